package server

import "testing"

func TestParseCounter(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"42", 42, true},
		{"  42  ", 42, true},
		{"42\r\n", 42, true},
		{"42 abc", 42, true}, // memcached ignores what follows white space
		{"\t+7\n", 7, true},
		{"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false},
		{"42abc", 0, false},
		{"abc", 0, false},
		{"", 0, false},
		{"+", 0, false},
		{"-5", 0, false},
		{" ", 0, false},
		// As memcached 1.6.18 (checked against it): strtoull's sign, and
		// the value read as a C string.
		{"-0", 0, true},
		{"-00", 0, true},
		{" -0", 0, true},
		{"\t-0\t", 0, true},
		{"-18446744073709551615", 1, true},
		{"-9223372036854775808", 0, false},
		{"-9223372036854775807", 0, false},
		{"+-5", 0, false},
		{"- 5", 0, false},
		{"5\x00", 5, true},
		{"5\x00abc", 5, true},
		{"5\x00x\x00", 5, true},
		{"\x005", 0, false},
	}
	for _, tt := range tests {
		v, ok := parseCounter([]byte(tt.in))
		if v != tt.want || ok != tt.ok {
			t.Errorf("parseCounter(%q) = %d, %v; want %d, %v", tt.in, v, ok, tt.want, tt.ok)
		}
	}
}
