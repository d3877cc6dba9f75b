package storetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// CPUMeter measures, for benchmarks, this process's CPU (getrusage) and,
// on PostgreSQL, that of the backends serving this process's connections
// to the server at EnvDatabaseURL (/proc/<pid>/stat, so Linux only: where
// that cannot be read, the backends' CPU is logged as not measured).
type CPUMeter struct {
	self     time.Duration
	backends map[int]time.Duration // pid → CPU at the start
	pg       bool
}

// StartCPU starts measuring; pg: the store is PostgreSQL, so also measure
// the backends of this process's connections.
func StartCPU(tb testing.TB, pg bool) *CPUMeter {
	tb.Helper()
	m := &CPUMeter{pg: pg}
	if m.pg {
		// Before this process's own CPU: the monitoring connection's cost
		// is not the benchmark's.
		m.backends = backendCPU(tb)
	}
	m.self = processCPU(tb)
	return m
}

// Used returns the CPU used since the start by this process and by the
// PostgreSQL backends; pgMeasured is false when the backends' was not
// measured.
func (m *CPUMeter) Used(tb testing.TB) (self, pg time.Duration, pgMeasured bool) {
	tb.Helper()
	self = processCPU(tb) - m.self
	if !m.pg || m.backends == nil {
		return self, 0, false
	}
	after := backendCPU(tb)
	for pid, now := range after {
		pg += now - m.backends[pid] // a backend opened meanwhile started at 0
	}
	tb.Logf("PostgreSQL CPU of %d backends (%d at the start): %s", len(after), len(m.backends), pg)
	return self, pg, after != nil
}

// Report reports the CPU used since the start per b.N: cpu-µs/op for this
// process and, when measured, pg-cpu-µs/op for the PostgreSQL backends.
func (m *CPUMeter) Report(b *testing.B) {
	b.Helper()
	self, pg, ok := m.Used(b)
	b.ReportMetric(float64(self.Microseconds())/float64(b.N), "cpu-µs/op")
	if ok {
		b.ReportMetric(float64(pg.Microseconds())/float64(b.N), "pg-cpu-µs/op")
	}
}

func processCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU returns the CPU used so far by each PostgreSQL backend whose
// client is a TCP connection of this process; nil when that cannot be
// known (not Linux, /proc unreadable).
func backendCPU(tb testing.TB) map[int]time.Duration {
	tb.Helper()
	ports, err := ownTCPPorts()
	if err != nil || len(ports) == 0 {
		tb.Logf("PostgreSQL backend CPU not measured: %v (%d own connections)", err, len(ports))
		return nil
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv(EnvDatabaseURL))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1) AND pid <> pg_backend_pid()`, ports)
	if err != nil {
		tb.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		tb.Fatal(err)
	}
	out := map[int]time.Duration{}
	for _, pid := range pids {
		d, err := procCPU(int(pid))
		if err != nil {
			tb.Logf("PostgreSQL backend CPU not measured: %v", err)
			return nil
		}
		out[int(pid)] = d
	}
	return out
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// procCPU reads utime + stime of a process from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from the
	// last ')'. utime and stime are fields 14 and 15.
	rest := string(raw[strings.LastIndexByte(string(raw), ')')+2:])
	fields := strings.Fields(rest)
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// ownTCPPorts lists the local ports of this process's established TCP
// connections (sockets among /proc/self/fd, found in /proc/self/net/tcp*).
func ownTCPPorts() ([]int32, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	var ports []int32
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "01" || !inodes[fields[9]] {
				continue
			}
			if _, port, ok := strings.Cut(fields[1], ":"); ok {
				if n, err := strconv.ParseInt(port, 16, 32); err == nil {
					ports = append(ports, int32(n))
				}
			}
		}
		f.Close()
	}
	return ports, nil
}
