//go:build !linux

package vbmc

import "os/exec"

func setProcAttr(*exec.Cmd) {}
