//go:build !noui

// Package ui holds the web UI: its source (ui/src) and the built assets
// (ui/dist) that the binary embeds and httpapi serves at /.
package ui

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// FS is the built UI, rooted at dist/.
var FS fs.FS = mustSub(dist, "dist")

func mustSub(f embed.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
