package mcp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CachedKinds are the kinds StartReadCache keeps informers for by default:
// those agents read most while diagnosing. Secrets and ConfigMaps are not
// among them: the server keeps no copy of what it must redact.
var CachedKinds = []schema.GroupVersionKind{
	{Version: "v1", Kind: "Pod"},
	{Version: "v1", Kind: "Node"},
	{Version: "v1", Kind: "Service"},
	{Version: "v1", Kind: "Namespace"},
	{Group: "apps", Version: "v1", Kind: "Deployment"},
	{Group: "apps", Version: "v1", Kind: "ReplicaSet"},
	{Group: "apps", Version: "v1", Kind: "StatefulSet"},
	{Group: "apps", Version: "v1", Kind: "DaemonSet"},
	{Group: "batch", Version: "v1", Kind: "Job"},
	{Group: "batch", Version: "v1", Kind: "CronJob"},
	{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"},
	{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"},
}

// StartReadCache starts informers for kinds (CachedKinds when nil) with
// cfg's identity, which must be able to list and watch them cluster-wide,
// waits (up to a minute) until they have synced, and returns the reader for
// Options.Reader.
// A kind it does not cache is refused with cache.ErrResourceNotCached, so
// the server reads it from the API server. The informers stop with ctx.
func StartReadCache(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, kinds []schema.GroupVersionKind) (client.Reader, error) {
	if kinds == nil {
		kinds = CachedKinds
	}
	c, err := cache.New(cfg, cache.Options{
		Scheme:                      scheme,
		ReaderFailOnMissingInformer: true,
		// What a tool never shows is not kept either.
		DefaultTransform: cache.TransformStripManagedFields(),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create the read cache: %w", err)
	}
	for _, gvk := range kinds {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		if _, err := c.GetInformer(ctx, u); err != nil {
			return nil, fmt.Errorf("failed to watch %s: %w", gvk.Kind, err)
		}
	}
	go func() { _ = c.Start(ctx) }()
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !c.WaitForCacheSync(syncCtx) {
		return nil, fmt.Errorf("failed to sync the read cache: %w", context.Cause(syncCtx))
	}
	return c, nil
}

// get reads one object: from the read cache when it holds it, else from the
// API server. An object the cache has not seen (just created, or of a kind
// it does not cache) is read from the API server, so a cache that lags
// never answers "not found" for an object that exists.
func (s *Server) get(ctx context.Context, key client.ObjectKey, u *unstructured.Unstructured) error {
	if s.opts.Reader != nil {
		err := s.opts.Reader.Get(ctx, key, u)
		if err == nil || !(notCached(err) || apierrors.IsNotFound(err)) {
			return err
		}
	}
	return s.opts.Client.Get(ctx, key, u)
}

// list reads one page: from the read cache when it holds the kind and the
// whole answer fits in one page (the cache cannot continue a list), else
// from the API server. Items come sorted by namespace and name, as the API
// server returns them.
func (s *Server) list(ctx context.Context, list *unstructured.UnstructuredList, limit int64, opts ...client.ListOption) error {
	var lo client.ListOptions
	lo.ApplyOptions(opts)
	if s.opts.Reader != nil && lo.Continue == "" {
		cached := list.DeepCopy()
		err := s.opts.Reader.List(ctx, cached, append(opts, client.Limit(limit+1))...)
		switch {
		case err == nil && int64(len(cached.Items)) <= limit:
			cached.SetContinue("")
			slices.SortFunc(cached.Items, func(a, b unstructured.Unstructured) int {
				if c := strings.Compare(a.GetNamespace(), b.GetNamespace()); c != 0 {
					return c
				}
				return strings.Compare(a.GetName(), b.GetName())
			})
			*list = *cached
			return nil
		case err != nil && !notCached(err):
			return err
		}
	}
	return s.opts.Client.List(ctx, list, append(opts, client.Limit(limit))...)
}

func notCached(err error) bool {
	var nc *cache.ErrResourceNotCached
	var ncv cache.ErrResourceNotCached
	return errors.As(err, &nc) || errors.As(err, &ncv)
}
