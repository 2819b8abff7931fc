package bus

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeRepeat(t *testing.T) {
	valid := `{"id":"repeat-1","namespace":"team","name":"rollback-web-x1","proposer":"system:serviceaccount:tend-system:tend-agent","time":"2026-11-21T10:00:00Z"}`
	r, err := DecodeRepeat([]byte(valid))
	if err != nil {
		t.Fatalf("valid repeat: %v", err)
	}
	if r.Namespace != "team" || r.Name != "rollback-web-x1" || !r.Time.Equal(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("decoded %+v", r)
	}
	for name, data := range map[string]string{
		"empty":         ``,
		"not json":      `repeat`,
		"unknown field": strings.Replace(valid, `"id"`, `"extra":1,"id"`, 1),
		"trailing data": valid + `{}`,
		"no id":         strings.Replace(valid, `"repeat-1"`, `""`, 1),
		"bad namespace": strings.Replace(valid, `"team"`, `"Team Space"`, 1),
		"bad name":      strings.Replace(valid, `"rollback-web-x1"`, `"../etc"`, 1),
		"no time":       strings.Replace(valid, `,"time":"2026-11-21T10:00:00Z"`, ``, 1),
		"oversized":     strings.Replace(valid, `"proposer":"`, `"proposer":"`+strings.Repeat("a", 5000), 1),
		"long proposer": strings.Replace(valid, `"proposer":"`, `"proposer":"`+strings.Repeat("a", 600), 1),
		"wrong type":    strings.Replace(valid, `"repeat-1"`, `1`, 1),
	} {
		if _, err := DecodeRepeat([]byte(data)); !errors.Is(err, ErrMalformedRepeat) {
			t.Errorf("%s: error %v, want ErrMalformedRepeat", name, err)
		}
	}
}

func FuzzDecodeRepeat(f *testing.F) {
	f.Add([]byte(`{"id":"repeat-1","namespace":"team","name":"web","proposer":"alice","time":"2026-11-21T10:00:00Z"}`))
	f.Add([]byte(`{"id":"","namespace":"","name":""}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRepeat(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedRepeat) {
				t.Fatalf("error %v does not wrap ErrMalformedRepeat", err)
			}
			return
		}
		// Whatever decodes is valid.
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded repeat is invalid: %v", err)
		}
	})
}
