package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/teamflow/teamflow/storage"
)

// API keys (personal access tokens) act as their owner, within the scopes
// and projects they were given. The token, tfk_<workspace>_<secret>, is
// shown once; the store keeps its SHA-256.

type apiKeyRecord struct {
	ID         string   `json:"id"`
	UserID     string   `json:"user_id"`
	Name       string   `json:"name"`
	Hash       string   `json:"hash"`
	Scopes     []string `json:"scopes"`
	Projects   []string `json:"projects,omitempty"`
	CreatedAt  int64    `json:"created_at"`
	ExpiresAt  int64    `json:"expires_at,omitempty"`
	RevokedAt  int64    `json:"revoked_at,omitempty"`
	LastUsedAt int64    `json:"last_used_at,omitempty"`
}

// APIKey is the API view of a key; Token appears only in the answer to its
// creation.
type APIKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	Projects   []string   `json:"projects"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	Token      string     `json:"token,omitempty" doc:"Shown once, at creation"`
}

const apiKeyPrefix = "tfk_"

func kAPIKey(id string) storage.Key        { return storage.K("apik", id) }
func kAPIKeyHash(h string) storage.Key     { return storage.K("ix", "apikh", h) }
func kUserAPIKeys(user string) storage.Key { return storage.K("ix", "uapik", user) }

func (r *apiKeyRecord) view() APIKey {
	out := APIKey{ID: r.ID, Name: r.Name, Scopes: nonNil(r.Scopes), Projects: nonNil(r.Projects), CreatedAt: time.UnixMilli(r.CreatedAt).UTC()}
	if r.ExpiresAt != 0 {
		t := time.UnixMilli(r.ExpiresAt).UTC()
		out.ExpiresAt = &t
	}
	if r.LastUsedAt != 0 {
		t := time.UnixMilli(r.LastUsedAt).UTC()
		out.LastUsedAt = &t
	}
	return out
}

// CreateAPIKeyInput creates a key.
type CreateAPIKeyInput struct {
	Name      string
	Scopes    []string // ["read"] or ["read", "write"]
	Projects  []string // optional restriction
	ExpiresAt *time.Time
}

// CreateAPIKey makes a key for the caller (not through another key).
func (s *Service) CreateAPIKey(ctx context.Context, p Principal, in CreateAPIKeyInput) (*APIKey, error) {
	if p.APIKeyID != "" || p.Operator {
		return nil, forbidden("API keys are created from a signed-in session")
	}
	name, err := validateName("name", in.Name, 100)
	if err != nil {
		return nil, err
	}
	scopes := []string{}
	for _, sc := range in.Scopes {
		if sc != "read" && sc != "write" {
			return nil, invalid("scopes", "invalid_scope", "scopes are read and write")
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	if !slices.Contains(scopes, "read") {
		return nil, invalid("scopes", "invalid_scope", "a key needs the read scope (write adds to it)")
	}
	slices.Sort(scopes)
	if len(in.Projects) > 100 {
		return nil, invalid("projects", "too_many_projects", "a key names at most 100 projects")
	}
	_, v := s.tenant(p.Tenant)
	for i, pid := range in.Projects {
		if _, _, err := s.visibleProject(v, p, pid); err != nil {
			return nil, invalid("projects", "invalid_project", "projects[%d] is not a project you can see", i)
		}
	}
	now := s.now()
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		return nil, invalid("expires_at", "invalid_expiry", "the expiry must be in the future")
	}
	token := apiKeyPrefix + strings.ReplaceAll(p.Tenant, "-", "") + "_" + randomToken(32)
	rec := apiKeyRecord{ID: newID(), UserID: p.UserID, Name: name, Hash: hashToken(token), Scopes: scopes, Projects: in.Projects, CreatedAt: now.UnixMilli()}
	if in.ExpiresAt != nil {
		rec.ExpiresAt = in.ExpiresAt.UnixMilli()
	}
	log, _ := s.tenant(p.Tenant)
	_, err = s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange(p.Tenant, "apikey.create", p.actor())
		ch.put(kAPIKey(rec.ID), rec, 1)
		ch.put(kAPIKeyHash(rec.Hash), map[string]string{"id": rec.ID}, 1)
		ch.index(kUserAPIKeys(p.UserID).Add(rec.ID))
		s.audit(ctx, ch, auditInput{Action: "apikey.create", TargetKind: "apikey", TargetID: rec.ID, Detail: map[string]any{"scopes": scopes}, Personal: map[string]any{"name": name}})
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	out := rec.view()
	out.Token = token
	return &out, nil
}

// ListAPIKeys lists the caller's keys (never their tokens).
func (s *Service) ListAPIKeys(ctx context.Context, p Principal) ([]APIKey, error) {
	_, v := s.tenant(p.Tenant)
	out := []APIKey{}
	err := v.Scan(kUserAPIKeys(p.UserID), storage.ScanOptions{}, func(k storage.Key, _ storage.Record) error {
		r, _, err := getRecord[apiKeyRecord](v, kAPIKey(lastPart(k)))
		if err != nil || r.RevokedAt != 0 {
			return nil
		}
		out = append(out, r.view())
		return nil
	})
	return out, err
}

// RevokeAPIKey revokes one of the caller's keys; it stops working on every
// node as soon as the revocation is applied there.
func (s *Service) RevokeAPIKey(ctx context.Context, p Principal, id string) error {
	if !validID(id) {
		return notFound("API key")
	}
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		r, rec, err := getRecord[apiKeyRecord](v, kAPIKey(id))
		if err != nil || r.UserID != p.UserID || r.RevokedAt != 0 {
			return nil, notFound("API key")
		}
		ch := s.newChange(p.Tenant, "apikey.revoke", p.actor())
		ch.expect(kAPIKey(id), rec.Version)
		r.RevokedAt = s.now().UnixMilli()
		ch.put(kAPIKey(id), r, rec.Version+1)
		ch.del(kAPIKeyHash(r.Hash))
		ch.del(kUserAPIKeys(p.UserID).Add(id))
		s.audit(ctx, ch, auditInput{Action: "apikey.revoke", TargetKind: "apikey", TargetID: id})
		return ch, nil
	})
	return err
}

// authenticateAPIKey resolves a tfk_ token.
func (s *Service) authenticateAPIKey(ctx context.Context, token string) (Principal, error) {
	tenant, ok := refreshTenant("tfr_" + strings.TrimPrefix(token, apiKeyPrefix))
	if !ok || len(token) > 256 {
		return Principal{}, errBadToken
	}
	if _, err := s.workspaceRecord(tenant); err != nil {
		return Principal{}, errBadToken
	}
	_, v := s.tenant(tenant)
	ix, _, err := getRecord[struct {
		ID string `json:"id"`
	}](v, kAPIKeyHash(hashToken(token)))
	if err != nil {
		return Principal{}, errBadToken
	}
	r, _, err := getRecord[apiKeyRecord](v, kAPIKey(ix.ID))
	now := s.now()
	if err != nil || r.RevokedAt != 0 || (r.ExpiresAt != 0 && now.UnixMilli() >= r.ExpiresAt) {
		return Principal{}, errBadToken
	}
	u, _, err := getRecord[userRecord](v, kUser(r.UserID))
	if err != nil || u.Status != StatusActive {
		return Principal{}, errBadToken
	}
	ws, _, err := getRecord[workspaceRecord](v, kWorkspace)
	if err != nil {
		return Principal{}, errBadToken
	}
	if err := s.refuseOutsideAllowlist(ctx, tenant, u.ID, ws); err != nil {
		return Principal{}, err
	}
	s.touchAPIKey(ctx, tenant, r.ID, now)
	return Principal{Tenant: tenant, UserID: u.ID, Role: u.Role, APIKeyID: r.ID, Scopes: r.Scopes, Projects: r.Projects}, nil
}

// keyUse remembers when each key's last use was recorded, so a busy key
// writes its last-use time at most once a minute.
var keyUse sync.Map

func (s *Service) touchAPIKey(ctx context.Context, tenant, id string, now time.Time) {
	if last, ok := keyUse.Load(id); ok && now.Sub(last.(time.Time)) < time.Minute {
		return
	}
	keyUse.Store(id, now)
	log, v := s.tenant(tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		r, rec, err := getRecord[apiKeyRecord](v, kAPIKey(id))
		if err != nil {
			return nil, err
		}
		ch := s.newChange(tenant, "apikey.used", r.UserID)
		ch.expect(kAPIKey(id), rec.Version)
		r.LastUsedAt = now.UnixMilli()
		ch.put(kAPIKey(id), r, rec.Version+1)
		return ch, nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("record API key use", "err", err)
	}
}
