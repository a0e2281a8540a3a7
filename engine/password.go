package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/alexedwards/argon2id"
	"github.com/trustelem/zxcvbn/frequency"
)

// PasswordParams is the argon2id cost.
type PasswordParams = argon2id.Params

// DefaultPasswordParams meet OWASP's minimum for argon2id (19 MiB, 2
// iterations, parallelism 1).
var DefaultPasswordParams = argon2id.Params{
	Memory:      19 * 1024,
	Iterations:  2,
	Parallelism: 1,
	SaltLength:  16,
	KeyLength:   32,
}

// Password length rules (ASVS 6.2.1, 6.2.9): at least 8 characters, and at
// least 64 allowed; 128 caps the work an attacker can make us hash.
const (
	minPasswordLen = 8
	maxPasswordLen = 128
)

func validatePassword(field, pw string) error {
	n := utf8.RuneCountInString(pw)
	if !utf8.ValidString(pw) {
		return invalid(field, "invalid_password", "the password is not valid UTF-8")
	}
	if n < minPasswordLen {
		return invalid(field, "password_too_short", "the password must have at least %d characters", minPasswordLen)
	}
	if n > maxPasswordLen {
		return invalid(field, "password_too_long", "the password may have at most %d characters", maxPasswordLen)
	}
	if commonPasswords()[strings.ToLower(pw)] {
		return invalid(field, "password_too_common", "this password is among the most common ones; choose another")
	}
	return nil
}

// commonPassword is the size of the list of most common passwords refused
// (ASVS 6.2.4), taken from zxcvbn's frequency list.
const commonPassword = 10_000

var commonOnce = sync.OnceValue(func() map[string]bool {
	list := frequency.FrequencyLists["passwords"]
	set := make(map[string]bool, commonPassword)
	for _, p := range list[:min(commonPassword, len(list))] {
		set[p] = true
	}
	return set
})

func commonPasswords() map[string]bool { return commonOnce() }

// acquireHash bounds concurrent argon2id work.
func (s *Service) acquireHash(ctx context.Context) (func(), error) {
	select {
	case s.hashes <- struct{}{}:
		return func() { <-s.hashes }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Service) hashPassword(ctx context.Context, pw string) (string, error) {
	release, err := s.acquireHash(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	h, err := argon2id.CreateHash(pw, &s.pw)
	if err != nil {
		return "", fmt.Errorf("engine: hash password: %w", err)
	}
	return h, nil
}

// checkPassword compares pw with hash. An empty hash (unknown account) is
// compared with a fixed dummy hash so that both cases cost the same.
func (s *Service) checkPassword(ctx context.Context, pw, hash string) (bool, error) {
	release, err := s.acquireHash(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	if hash == "" {
		hash = s.dummyHash()
		_, _ = argon2id.ComparePasswordAndHash(pw, hash)
		return false, nil
	}
	s.passwordChecks.Add(1)
	ok, err := argon2id.ComparePasswordAndHash(pw, hash)
	if err != nil {
		return false, fmt.Errorf("engine: check password: %w", err)
	}
	return ok, nil
}

// PasswordChecks counts real password comparisons (not the dummy ones run
// for unknown or paused accounts): the brute-force test reads it.
func (s *Service) PasswordChecks() int64 { return s.passwordChecks.Load() }

var (
	dummyOnce sync.Once
	dummy     string
)

func (s *Service) dummyHash() string {
	dummyOnce.Do(func() {
		dummy, _ = argon2id.CreateHash("teamflow-dummy-password", &s.pw)
	})
	return dummy
}
