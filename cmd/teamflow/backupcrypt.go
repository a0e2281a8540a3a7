package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/teamflow/teamflow/storage"
)

// Encrypted backups are age files (filippo.io/age, age-encryption.org/v1):
// the backup stream encrypted to one or more public keys (recipients), so
// the host that takes backups never holds the key that reads them. age
// authenticates every 64 KiB chunk and marks the last one, so a flipped
// byte, a truncation or a wrong key fails the restore before anything is
// installed; under it the stream keeps its own SHA-256 trailer. Any age
// tool decrypts a backup too (`age -d -i key.txt backup.tfbackup`).

// ageMagic begins every age file; a plain backup begins with "TFSNAP".
var ageMagic = []byte("age-encryption.org/")

// backupRecipients reads the public keys a backup is encrypted to: each
// --recipient, and every line of --recipients-file (age's format: one key
// per line, # comments). None: the backup is written unencrypted.
func backupRecipients(keys []string, file string) ([]age.Recipient, error) {
	text := strings.Join(keys, "\n")
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("recipients: %w", err)
		}
		text += "\n" + string(b)
	}
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	rs, err := age.ParseRecipients(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("recipients: %w", err)
	}
	return rs, nil
}

// readIdentities reads an age identity file (the private keys written by
// `teamflow backup keygen` or age-keygen); an empty path reads none.
func readIdentities(path string) ([]age.Identity, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	return ids, nil
}

// openBackupFile opens a backup for reading: decrypted with ids when it is
// an age file, as it is otherwise.
func openBackupFile(path string, ids []age.Identity) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	head, _ := br.Peek(len(ageMagic))
	if !bytes.Equal(head, ageMagic) {
		return readCloser{br, f}, nil
	}
	if len(ids) == 0 {
		f.Close()
		return nil, errors.New("the backup is encrypted: give the key that opens it with --identity")
	}
	r, err := age.Decrypt(br, ids...)
	if err != nil {
		f.Close()
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			return nil, errors.New("the backup is encrypted to another key: no identity given with --identity opens it")
		}
		return nil, fmt.Errorf("%w: encrypted backup: %v", storage.ErrSnapshotCorrupt, err)
	}
	return readCloser{r, f}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// keygenCmd makes a key pair for encrypted backups.
func keygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Make a key pair for encrypted backups: the private key to FILE, the public key printed",
		Long: "Writes a new age X25519 private key to FILE (mode 0600; an existing file is never replaced) and\n" +
			"prints its public key. Give the public key to `teamflow backup --recipient`; keep FILE away from\n" +
			"the backup host, and give it to `teamflow restore --identity` to restore.",
		Args: cobra.NoArgs,
		// No operator token needed: nothing talks to a node.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			id, err := age.GenerateX25519Identity()
			if err != nil {
				return err
			}
			err = writeSynced(out, os.O_EXCL, func(f io.Writer) error {
				_, err := fmt.Fprintf(f, "# teamflow backup key\n# public key: %s\n%s\n", id.Recipient(), id)
				return err
			})
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Private key written to %s.\nPublic key: %s\n", out, id.Recipient())
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the private key to (must not exist)")
	return cmd
}
