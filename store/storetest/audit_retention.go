package storetest

import "testing"

func testAuditRetention(t *testing.T, open Opener) { t.Skip("TODO(session): being written") }
