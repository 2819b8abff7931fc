package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestRunItemOfFingerprint(t *testing.T) {
	for _, tt := range []struct {
		fp   string
		key  types.NamespacedName
		item int
		undo bool
		ok   bool
	}{
		{fp: "improve/shop/nightly-29610360/3", key: types.NamespacedName{Namespace: "shop", Name: "nightly-29610360"}, item: 3, ok: true},
		{fp: "improve/shop/nightly-29610360/0/undo", key: types.NamespacedName{Namespace: "shop", Name: "nightly-29610360"}, undo: true, ok: true},
		{fp: "improve/shop/nightly/-1"},
		{fp: "improve/shop/nightly/x"},
		{fp: "improve/shop/nightly/1/redo"},
		{fp: "improve/shop/nightly/1/undo/undo"},
		{fp: "improve//nightly/1"},
		{fp: "improve/shop/nightly"},
		{fp: "maintenance/shop/web/oom"},
		{fp: ""},
	} {
		key, item, undo, ok := runItemOfFingerprint(tt.fp)
		if ok != tt.ok || key != tt.key || item != tt.item || undo != tt.undo {
			t.Errorf("runItemOfFingerprint(%q) = %v, %d, %t, %t; want %v, %d, %t, %t", tt.fp, key, item, undo, ok, tt.key, tt.item, tt.undo, tt.ok)
		}
	}
}
