package store

import (
	"context"
	"fmt"

	"github.com/mandated/mandated/audit"
	"github.com/mandated/mandated/seal"
	"github.com/pressly/goose/v3"
	"golang.org/x/mod/sumdb/tlog"
	"gorm.io/gorm"
)

// ExecAuditSQL runs raw SQL on s's writer, as someone at the database would.
// Only tests see it.
func ExecAuditSQL(ctx context.Context, s *Store, sql string) error {
	return s.db.WithContext(ctx).Exec(sql).Error
}

// MigrateTo applies the migrations up to version.
func MigrateTo(ctx context.Context, s *Store, version int64) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	dialect, fsys, err := s.migrationSource()
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(dialect, sqlDB, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	_, err = p.UpTo(ctx, version)
	return err
}

// CopyAuditAsLegacy copies src's audit log into dst, a store migrated to
// version 3 (one key per person, no periods), as the code of that version
// would have written it: each person's one key (src must hold one period
// per person) resealed with the legacy purpose, readable fields without
// period.
func CopyAuditAsLegacy(ctx context.Context, src, dst *Store, sealer *seal.Sealer) error {
	size, err := src.AuditTreeSize(ctx)
	if err != nil {
		return err
	}
	leaves, err := src.AuditLeaves(ctx, 0, size)
	if err != nil {
		return err
	}
	idx := make([]int64, tlog.StoredHashCount(size))
	for i := range idx {
		idx[i] = int64(i)
	}
	hashes, err := src.AuditHashReader(ctx).ReadHashes(idx)
	if err != nil {
		return err
	}
	readable, err := src.AuditReadable(ctx, 0, size)
	if err != nil {
		return err
	}
	var persons []string
	for _, r := range readable {
		persons = append(persons, r.Person)
	}
	keys, err := src.AuditPersonKeys(ctx, persons, nil)
	if err != nil {
		return err
	}
	return dst.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, l := range leaves {
			row := auditEventRow{Seq: l.Seq, Time: utc(l.Time), Action: string(l.Action), Outcome: string(l.Outcome),
				ActorKind: string(l.ActorKind), ActorID: l.ActorID, Structure: l.Structure, MandateID: l.MandateID,
				ClientID: l.ClientID, RequestID: l.RequestID, Leaf: l.Data}
			if err := tx.Create(&row).Error; err != nil {
				return err
			}
		}
		for i, h := range hashes {
			if err := tx.Create(&auditHashRow{Idx: int64(i), Hash: h[:]}).Error; err != nil {
				return err
			}
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k.Person] {
				return fmt.Errorf("%s has keys of several periods", k.Person)
			}
			seen[k.Person] = true
			key, err := sealer.Open(k.Sealed, audit.PersonKeyPurpose(k.Person, k.Period))
			if err != nil {
				return err
			}
			legacy, err := sealer.Seal(key, audit.PersonKeyPurpose(k.Person, audit.LegacyPeriod))
			if err != nil {
				return err
			}
			if err := tx.Exec("INSERT INTO audit_person_keys (person, sealed, created_at) VALUES (?, ?, ?)",
				k.Person, legacy, utc(k.CreatedAt)).Error; err != nil {
				return err
			}
		}
		for _, r := range readable {
			if err := tx.Exec("INSERT INTO audit_readable (seq, person, roles, sealed) VALUES (?, ?, ?, ?)",
				r.Seq, r.Person, r.Roles, r.Sealed).Error; err != nil {
				return err
			}
		}
		return tx.Exec("UPDATE audit_tree_head SET size = ? WHERE id = 1", size).Error
	})
}

// MigrateDownTo rolls the migrations back to version.
func MigrateDownTo(ctx context.Context, s *Store, version int64) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	dialect, fsys, err := s.migrationSource()
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(dialect, sqlDB, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	_, err = p.DownTo(ctx, version)
	return err
}
