package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	gormlogger "gorm.io/gorm/logger"
)

// slogGormLogger sends everything gorm says to slog at debug level: failed
// statements are reported to callers as errors, so logging them louder here
// would only repeat them.
type slogGormLogger struct{ log *slog.Logger }

func (l slogGormLogger) LogMode(gormlogger.LogLevel) gormlogger.Interface { return l }

func (l slogGormLogger) Info(ctx context.Context, msg string, args ...any) {
	l.log.DebugContext(ctx, "gorm: "+fmt.Sprintf(msg, args...))
}

func (l slogGormLogger) Warn(ctx context.Context, msg string, args ...any) {
	l.log.DebugContext(ctx, "gorm: "+fmt.Sprintf(msg, args...))
}

func (l slogGormLogger) Error(ctx context.Context, msg string, args ...any) {
	l.log.DebugContext(ctx, "gorm: "+fmt.Sprintf(msg, args...))
}

func (l slogGormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if !l.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	sql, rows := fc()
	attrs := []any{"sql", sql, "rows", rows, "duration", time.Since(begin)}
	if err != nil {
		attrs = append(attrs, "error", err)
	}
	l.log.DebugContext(ctx, "sql", attrs...)
}

// ParamsFilter keeps bound values (secrets, hashes) out of the logs.
func (l slogGormLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}
