package storetest

import "testing"

func testPasskeys(t *testing.T, open Opener) { t.Skip("TODO(session): being written") }
