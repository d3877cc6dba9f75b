package storetest

import "testing"

func testAccount(t *testing.T, open Opener) { t.Skip("TODO(session): being written") }
