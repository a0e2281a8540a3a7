//go:build noui

package ui

import "io/fs"

// FS is nil in builds without the UI (-tags noui); httpapi then serves a notice.
var FS fs.FS
