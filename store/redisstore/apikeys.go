package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/store"
)

// Admin API keys are read from Redis on every call, never cached, so that
// a key revoked through one process is refused by every other at once.

// CreateKey stores k. Its id and the hash of its secret must both be new:
// store.ErrConflict otherwise.
func (s *Store) CreateKey(ctx context.Context, k store.APIKey) error {
	if k.ID == "" || k.Hash == "" {
		return errors.New("redisstore: create key: a key needs an id and a hash")
	}
	fields, err := apiKeyFields(k)
	if err != nil {
		return fmt.Errorf("redisstore: create key %s: %w", k.ID, err)
	}
	keys := []string{s.k.apiKey(k.ID), s.k.apiKeyHash(k.Hash), s.k.apiKeys()}
	args := append([]any{k.ID, millisOrZero(k.CreatedAt)}, fields...)
	res, err := createKeyScript.Run(ctx, s.c, keys, args...).Int64()
	if err != nil {
		return fmt.Errorf("redisstore: create key %s: %w", k.ID, err)
	}
	switch res {
	case 0:
		return fmt.Errorf("redisstore: create key %s: the id is taken: %w", k.ID, store.ErrConflict)
	case -1:
		return fmt.Errorf("redisstore: create key %s: a key with that hash exists: %w", k.ID, store.ErrConflict)
	}
	return nil
}

func millisOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// Keys lists every key, revoked ones too, oldest first.
func (s *Store) Keys(ctx context.Context) ([]store.APIKey, error) {
	res, err := keysScript.Run(ctx, s.c, []string{s.k.apiKeys()}, s.k.base).Slice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: keys: %w", err)
	}
	ks := make([]store.APIKey, 0, len(res))
	for _, r := range res {
		m, err := fieldMap(r)
		if err != nil {
			return nil, fmt.Errorf("redisstore: keys: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		k, err := decodeAPIKey(m)
		if err != nil {
			return nil, fmt.Errorf("redisstore: keys: %w", err)
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// KeyByHash reads the key, revoked or not, whose secret has that hash.
func (s *Store) KeyByHash(ctx context.Context, hash string) (store.APIKey, error) {
	res, err := keyByHashScript.Run(ctx, s.c, []string{s.k.apiKeyHash(hash)}, s.k.base).Result()
	if errors.Is(err, redis.Nil) {
		return store.APIKey{}, fmt.Errorf("redisstore: key by hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.APIKey{}, fmt.Errorf("redisstore: key by hash: %w", err)
	}
	m, err := fieldMap(res)
	if err != nil {
		return store.APIKey{}, fmt.Errorf("redisstore: key by hash: %w", err)
	}
	if len(m) == 0 {
		return store.APIKey{}, fmt.Errorf("redisstore: key by hash: %w", store.ErrNotFound)
	}
	k, err := decodeAPIKey(m)
	if err != nil {
		return store.APIKey{}, fmt.Errorf("redisstore: key by hash: %w", err)
	}
	return k, nil
}

// RevokeKey marks the key revoked at at; a key revoked before keeps its
// first revocation time.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) error {
	if err := s.stampKey(ctx, id, "revoked", at); err != nil {
		return fmt.Errorf("redisstore: revoke key %s: %w", id, err)
	}
	return nil
}

// TouchKey records that the key was used at at; LastUsedAt only moves
// forward.
func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	if err := s.stampKey(ctx, id, "used", at); err != nil {
		return fmt.Errorf("redisstore: touch key %s: %w", id, err)
	}
	return nil
}

func (s *Store) stampKey(ctx context.Context, id, field string, at time.Time) error {
	if at.IsZero() {
		return errors.New("no time given")
	}
	res, err := stampKeyScript.Run(ctx, s.c, []string{s.k.apiKey(id)}, field, at.UnixMilli()).Int64()
	if err != nil {
		return err
	}
	if res < 0 {
		return store.ErrNotFound
	}
	return nil
}
