//go:build e2e

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teamflow/teamflow/internal/figures"
)

// TestWorkspaceBackup: `teamflow backup --workspace` from a running node
// holds that workspace alone; `teamflow restore` builds a new node serving
// it (same keyspace hash, its people sign in, its data reads and takes
// writes) where the other workspace does not exist, the source's tokens
// are not accepted, and no first-run setup is offered.
func TestWorkspaceBackup(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, "--mode", "cloud")
	acme := signup(t, s, "acme")
	beta := signup(t, s, "beta")
	pid := want(t, acme.do("POST", "/api/v1/projects", map[string]any{"name": "Launch"}), 201, "project")["id"].(string)
	for i := range 5 {
		want(t, acme.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": "acme task " + string(rune('a'+i))}), 201, "task")
	}
	want(t, beta.do("POST", "/api/v1/projects", map[string]any{"name": "Beta-Canary-Project"}), 201, "beta project")
	tok, err := os.ReadFile(filepath.Join(dir, operatorTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	opTok := strings.TrimSpace(string(tok))
	op := newClient(t, s.URL)
	op.token = opTok
	file := filepath.Join(t.TempDir(), "acme.tfbackup")
	if out, err := exec.Command(binary, "backup", "--workspace", "acme", "--out", file, "--server", s.URL, "--token", opTok).CombinedOutput(); err != nil {
		t.Fatalf("backup --workspace: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "backup", "--workspace", "nope", "--out", file+".x", "--server", s.URL, "--token", opTok).CombinedOutput(); err == nil {
		t.Fatalf("a backup of an unknown workspace succeeded:\n%s", out)
	}
	// Read after the backup: the backup records itself in the workspace's
	// audit trail before its stream starts, so the copy includes that entry.
	source := want(t, op.do("GET", "/api/v1/platform/workspaces/acme/hash", nil), 200, "source hash")["hash"].(string)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	leaks := 0
	for _, other := range []string{"Beta-Canary-Project", "owner@beta.test"} {
		if bytes.Contains(raw, []byte(other)) {
			leaks++
			t.Errorf("the workspace backup of acme holds %q", other)
		}
	}

	restored := filepath.Join(t.TempDir(), "restored")
	if out, err := exec.Command(binary, "restore", "--from", file, "--data", restored).CombinedOutput(); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	r := start(t, restored, "--mode", "onprem")
	if strings.Contains(r.Stdout(), "/setup") {
		t.Errorf("the restored node offers first-run setup:\n%s", r.Stdout())
	}
	tok, _ = os.ReadFile(filepath.Join(restored, operatorTokenFile))
	rop := newClient(t, r.URL)
	rop.token = strings.TrimSpace(string(tok))
	mismatch := 0
	if h := want(t, rop.do("GET", "/api/v1/platform/workspaces/acme/hash", nil), 200, "restored hash")["hash"].(string); h != source {
		mismatch++
		t.Errorf("restored hash %s, source %s", h, source)
	}
	old := newClient(t, r.URL)
	old.token = acme.token
	foreignToken := 0
	if st := old.do("GET", "/api/v1/me", nil).Status; st != 401 {
		foreignToken++
		t.Errorf("a token of the source node answered %d on the restored node", st)
	}
	cl := newClient(t, r.URL)
	m := want(t, cl.do("POST", "/api/v1/auth/login", map[string]any{"workspace": "acme", "email": "owner@acme.test", "password": "password-acme"}), 200, "login on the restored node")
	cl.token = m["access_token"].(string)
	items := want(t, cl.do("GET", "/api/v1/projects/"+pid+"/tasks", nil), 200, "tasks")["items"].([]any)
	if len(items) != 5 {
		t.Errorf("restored tasks: %d, want 5", len(items))
	}
	want(t, cl.do("POST", "/api/v1/projects/"+pid+"/tasks", map[string]any{"title": "after restore"}), 201, "write after restore")
	otherWorkspace := 0
	if st := newClient(t, r.URL).do("POST", "/api/v1/auth/login", map[string]any{"workspace": "beta", "email": "owner@beta.test", "password": "password-beta"}).Status; st != 401 {
		otherWorkspace++
		t.Errorf("the other workspace signs in on the restored node: %d", st)
	}
	figures.Report(t, "B1", 0, []figures.Figure{
		figures.Eq("restored_hash_mismatch", float64(mismatch), 0),
		figures.Eq("other_workspace_bytes_in_backup", float64(leaks), 0),
		figures.Eq("other_workspace_restored", float64(otherWorkspace), 0),
		figures.Eq("source_token_accepted", float64(foreignToken), 0),
	})
}

// TestEncryptedBackupCLI: the operator's way to an encrypted backup.
// `teamflow backup keygen` makes the key pair, `teamflow backup
// --recipient` writes a file that holds no plaintext, and `teamflow
// restore` refuses it without the private key and restores it with it.
func TestEncryptedBackupCLI(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, "--mode", "cloud")
	acme := signup(t, s, "acme")
	pid := want(t, acme.do("POST", "/api/v1/projects", map[string]any{"name": "Secret-Launch-Plan"}), 201, "project")["id"].(string)
	tok, err := os.ReadFile(filepath.Join(dir, operatorTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	opTok := strings.TrimSpace(string(tok))
	keys := t.TempDir()
	key := filepath.Join(keys, "backup.key")
	out, err := exec.Command(binary, "backup", "keygen", "--out", key).CombinedOutput()
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	_, pub, ok := strings.Cut(strings.TrimSpace(string(out)), "Public key: ")
	if !ok || !strings.HasPrefix(pub, "age1") {
		t.Fatalf("keygen printed no public key:\n%s", out)
	}
	if out, err := exec.Command(binary, "backup", "keygen", "--out", key).CombinedOutput(); err == nil {
		t.Fatalf("keygen replaced an existing key:\n%s", out)
	}
	file := filepath.Join(t.TempDir(), "all.tfbackup")
	if out, err := exec.Command(binary, "backup", "--recipient", pub, "--out", file, "--server", s.URL, "--token", opTok).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "encrypted to 1 key") {
		t.Fatalf("encrypted backup: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("Secret-Launch-Plan")) || !bytes.HasPrefix(raw, []byte("age-encryption.org/v1")) {
		t.Fatalf("the encrypted backup is not an age file or holds plaintext")
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if out, err := exec.Command(binary, "restore", "--from", file, "--data", restored).CombinedOutput(); err == nil || !strings.Contains(string(out), "--identity") {
		t.Fatalf("restore without the key: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "restore", "--from", file, "--data", restored, "--identity", key).CombinedOutput(); err != nil {
		t.Fatalf("restore with the key: %v\n%s", err, out)
	}
	r := start(t, restored, "--mode", "cloud")
	cl := newClient(t, r.URL)
	m := want(t, cl.do("POST", "/api/v1/auth/login", map[string]any{"workspace": "acme", "email": "owner@acme.test", "password": "password-acme"}), 200, "login on the restored node")
	cl.token = m["access_token"].(string)
	if name := want(t, cl.do("GET", "/api/v1/projects/"+pid, nil), 200, "restored project")["name"]; name != "Secret-Launch-Plan" {
		t.Errorf("restored project name %v", name)
	}
}
