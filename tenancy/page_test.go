package tenancy

import (
	"testing"
	"time"
)

func TestCursor(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 28, 12, 0, 0, 123456000, time.UTC)
	id := "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
	c, limit, err := Page{Cursor: EncodeCursor(at, id), Limit: 7}.Bounds()
	if err != nil || !c.At.Equal(at) || c.ID != id || limit != 7 {
		t.Fatalf("round trip: %v %v %d %v", c, at, limit, err)
	}
	for _, bad := range []string{"!!!", "bm90LWEtY3Vyc29y", EncodeCursor(at, "not-a-uuid"),
		EncodeCursor(at, "urn:uuid:"+id), EncodeCursor(at, "{"+id+"}"), EncodeCursor(at, "6F1C2D3E-4A5B-4C6D-8E9F-0A1B2C3D4E5F")} {
		if _, _, err := (Page{Cursor: bad}).Bounds(); ErrorCode(err) != CodeInvalid {
			t.Errorf("cursor %q: got %v, want invalid_request", bad, err)
		}
	}
	for _, l := range []int{-1, MaxLimit + 1} {
		if _, _, err := (Page{Limit: l}).Bounds(); ErrorCode(err) != CodeInvalid {
			t.Errorf("limit %d: got %v", l, err)
		}
	}
	if _, limit, _ := (Page{}).Bounds(); limit != DefaultLimit {
		t.Errorf("default limit %d", limit)
	}
}
