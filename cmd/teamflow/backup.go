package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/teamflow/teamflow/cluster"
	"github.com/teamflow/teamflow/engine"
	"github.com/teamflow/teamflow/storage"
)

// backupCmd streams a consistent snapshot of a running node's whole store,
// or of one workspace, to a file. The file is storage's snapshot stream (format byte, applied
// index, records in key order, SHA-256 trailer), encrypted with age when
// recipients are given (backupcrypt.go): restore refuses it if a byte is
// missing or changed.
func backupCmd() *cobra.Command {
	var outPath, workspace, recipientsFile string
	var recipientKeys []string
	cmd := &cobra.Command{
		Use:   "backup --out FILE [--workspace SLUG] [--recipient KEY]",
		Short: "Take an online, consistent backup of the whole store, or of one workspace, from a running node",
		Long: "Streams a snapshot of every workspace and platform record from a running node (single or\n" +
			"cluster member) to FILE. In a cluster the node first confirms with the leader that it holds\n" +
			"every acknowledged write. A workspace in a dedicated store is read from it; the file lays it\n" +
			"out as a shared one (`teamflow restore` builds a node without dedicated stores).\n" +
			"The stream is checked (checksum, format) as it arrives; FILE is written only once it verified.\n" +
			"With --recipient (a public key from `teamflow backup keygen`, or any age recipient) FILE is\n" +
			"encrypted to it: only the matching private key (`teamflow restore --identity`) reads it.\n" +
			"With --workspace, FILE holds that workspace alone (no other workspace, no platform secret):\n" +
			"`teamflow restore` builds a new node serving just it (its people sign in again there).",
		Args: cobra.NoArgs,
	}
	c := operatorFlags(cmd)
	c.http.Timeout = 0 // a large store takes a while; the context bounds it
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if outPath == "" {
			return errors.New("--out is required")
		}
		servers := c.servers()
		if len(servers) == 0 {
			return errors.New("--server is empty")
		}
		recipients, err := backupRecipients(recipientKeys, recipientsFile)
		if err != nil {
			return err
		}
		idx, size, err := downloadBackup(cmd.Context(), c, servers[0], workspace, outPath, recipients)
		if err != nil {
			return err
		}
		how := "unencrypted"
		if len(recipients) > 0 {
			how = fmt.Sprintf("encrypted to %d key(s)", len(recipients))
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Backup of index %d written to %s (%d bytes, checksum verified, %s).\n", idx, outPath, size, how)
		return nil
	}
	cmd.Flags().StringVar(&outPath, "out", "", "file to write (replaced only once the new backup is complete and verified)")
	cmd.Flags().StringVar(&workspace, "workspace", "", "back up this workspace (slug) alone")
	cmd.Flags().StringArrayVar(&recipientKeys, "recipient", nil, "encrypt to this public key (age1...; repeat for several)")
	cmd.Flags().StringVar(&recipientsFile, "recipients-file", "", "encrypt to every public key in this file (one per line)")
	cmd.AddCommand(keygenCmd())
	return cmd
}

func downloadBackup(ctx context.Context, c *operatorClient, server, workspace, outPath string, recipients []age.Recipient) (uint64, int64, error) {
	u := server + "/api/v1/platform/backup"
	if workspace != "" {
		u += "?workspace=" + url.QueryEscape(workspace)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("reach %s: %w", server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return 0, 0, fmt.Errorf("backup from %s: %d %s", server, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	idx, size, err := saveBackup(resp.Body, outPath, recipients)
	if err != nil {
		return 0, 0, fmt.Errorf("backup from %s: %w", server, err)
	}
	return idx, size, nil
}

// saveBackup writes a backup stream to outPath, encrypted to recipients
// when there are any. The stream is verified (format, checksum) as it
// passes, and the file takes outPath's place only once the whole stream
// verified and the file is synced: a damaged stream leaves no file and an
// older backup at outPath untouched.
func saveBackup(stream io.Reader, outPath string, recipients []age.Recipient) (uint64, int64, error) {
	tmp := outPath + ".partial"
	var idx uint64
	var size int64
	err := writeSynced(tmp, os.O_TRUNC, func(f io.Writer) (err error) {
		idx, size, err = writeVerified(f, stream, recipients)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	if err := os.Rename(tmp, outPath); err != nil {
		return 0, 0, err
	}
	if d, err := os.Open(filepath.Dir(outPath)); err == nil {
		d.Sync()
		d.Close()
	}
	return idx, size, nil
}

// writeSynced creates path (mode 0600; flag adds O_TRUNC or O_EXCL),
// fills it with write and syncs it; on any failure the file is removed.
func writeSynced(path string, flag int, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, 0o600)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// writeVerified copies stream to dst (through age when there are
// recipients) while storage.VerifySnapshot reads the same bytes.
func writeVerified(dst io.Writer, stream io.Reader, recipients []age.Recipient) (uint64, int64, error) {
	w := dst
	var enc io.WriteCloser
	if len(recipients) > 0 {
		var err error
		if enc, err = age.Encrypt(dst, recipients...); err != nil {
			return 0, 0, fmt.Errorf("encrypt: %w", err)
		}
		w = enc
	}
	pr, pw := io.Pipe()
	type verdict struct {
		idx uint64
		err error
	}
	done := make(chan verdict, 1)
	go func() {
		idx, err := storage.VerifySnapshot(pr)
		// Read on after a verdict, so the copy never blocks on it.
		io.Copy(io.Discard, pr)
		done <- verdict{idx, err}
	}()
	size, err := io.Copy(io.MultiWriter(w, pw), stream)
	pw.CloseWithError(err)
	v := <-done
	switch {
	case err != nil:
		return 0, 0, err
	case v.err != nil:
		return 0, 0, fmt.Errorf("the stream is damaged (nothing written): %w", v.err)
	}
	if enc != nil {
		if err := enc.Close(); err != nil {
			return 0, 0, fmt.Errorf("encrypt: %w", err)
		}
	}
	return v.idx, size, nil
}

// verifyBackupFile checks a whole backup file (decrypting it with ids if
// it is encrypted) and returns the index it was taken at.
func verifyBackupFile(path string, ids []age.Identity) (uint64, error) {
	r, err := openBackupFile(path, ids)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return storage.VerifySnapshot(r)
}

// restoreCmd builds a new installation from a backup: a single node, or
// the first node of a new cluster (the others join it).
func restoreCmd() *cobra.Command {
	var from, data, raftAddr, identity string
	var nodeID uint64
	cmd := &cobra.Command{
		Use:   "restore --from FILE --data DIR",
		Short: "Build a new node (or the first node of a new cluster) from a backup",
		Long: "Verifies FILE (decrypting it with --identity if it is encrypted), then fills the empty data directory\n" +
			"DIR with it; a damaged file, or a key that does not open it, leaves DIR untouched. Without --node-id DIR serves as a\n" +
			"single node; with --node-id and --raft-addr it becomes the only voter of a new cluster: start it with\n" +
			"`teamflow serve --node-id N --peers N=<raft-addr> ...`, then add members with `teamflow cluster join`.\n" +
			"A new platform operator token is written to DIR/operator.token (the backup's one stops working).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || data == "" {
				return errors.New("--from and --data are required")
			}
			if nodeID != 0 && raftAddr == "" {
				return errors.New("--node-id needs --raft-addr (the new node's raft address)")
			}
			ids, err := readIdentities(identity)
			if err != nil {
				return err
			}
			idx, err := restoreBackup(cmd.Context(), from, data, nodeID, raftAddr, ids)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Restored index %d into %s; operator token written to %s.\n", idx, data, filepath.Join(data, operatorTokenFile))
			if nodeID != 0 {
				fmt.Fprintf(out, "Start it: teamflow serve --data %s --node-id %d --peers %d=%s --cluster-cert-dir <certs>\n", data, nodeID, nodeID, raftAddr)
				fmt.Fprintln(out, "then add each other node with `teamflow cluster join <id> <raft-addr>`.")
			} else {
				fmt.Fprintf(out, "Start it: teamflow serve --data %s\n", data)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "backup file written by `teamflow backup`")
	f.StringVar(&data, "data", "", "new, empty data directory")
	f.Uint64Var(&nodeID, "node-id", 0, "make DIR the first node of a new cluster with this ID")
	f.StringVar(&raftAddr, "raft-addr", "", "with --node-id: the node's raft address (host:port)")
	f.StringVar(&identity, "identity", "", "private key file that opens an encrypted backup (from `teamflow backup keygen`)")
	return cmd
}

func restoreBackup(ctx context.Context, from, data string, nodeID uint64, raftAddr string, ids []age.Identity) (uint64, error) {
	// groupsDir too: the restored store has no route records, so group IDs
	// start over, and a later move must not reopen a leftover group.
	for _, sub := range []string{stateDir, clusterDir, groupsDir} {
		if entries, err := os.ReadDir(filepath.Join(data, sub)); err == nil && len(entries) > 0 {
			return 0, fmt.Errorf("%s is not empty: restore builds a new node in an empty data directory", filepath.Join(data, sub))
		}
	}
	idx, err := verifyBackupFile(from, ids)
	if err != nil {
		return 0, fmt.Errorf("backup %s: %w", from, err)
	}
	if err := storage.MkdirAllSynced(nil, data, 0o700); err != nil {
		return 0, err
	}
	st, err := openStore(data, storage.Options{NoSync: nodeID != 0})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	f, err := openBackupFile(from, ids)
	if err != nil {
		return 0, err
	}
	err = st.InstallSnapshot(f, idx)
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("install %s: %w", from, err)
	}
	// A new operator token, written through a local log before any raft
	// log exists: it is part of the state the new cluster starts from.
	lg := storage.NewLocalLog(st, storage.LocalLogOptions{})
	eng := engine.New(engine.Deps{Router: engine.SharedRouter{Route: engine.Route{Log: lg, Store: st}}}, engine.Config{})
	tok, err := eng.ResetOperatorToken(ctx)
	lg.Close()
	if err != nil {
		return 0, fmt.Errorf("new operator token: %w", err)
	}
	if nodeID != 0 {
		if _, err := cluster.Restore(filepath.Join(data, clusterDir), nodeID, raftAddr, st); err != nil {
			return 0, err
		}
	} else if err := st.Sync(); err != nil {
		return 0, err
	}
	if err := writeSecret(filepath.Join(data, operatorTokenFile), tok); err != nil {
		return 0, err
	}
	return idx, nil
}
