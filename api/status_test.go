package api

import "testing"

func TestFailureStatus(t *testing.T) {
	for _, tc := range []struct {
		code  int
		class string
		want  int
	}{
		{21047, "", 422}, {25003, "", 422}, {25005, "", 422}, {700014, "", 422},
		{21020, "", 429}, {21046, "", 429}, {-352, "", 429},
		{-101, "", 503}, {21007, "", 400}, {21026, "", 400},
		{0, "transient", 502}, {-3, "", 502}, {0, "image", 422}, {0, "invalid_command", 400}, {0, "", 422},
	} {
		if got := failureStatus(tc.code, tc.class); got != tc.want {
			t.Errorf("failureStatus(%d, %q) = %d, want %d", tc.code, tc.class, got, tc.want)
		}
	}
}
