package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// report writes the results as a table, or as indented JSON.
func report(w io.Writer, res *results, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(phase, what, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", phase, what, fmt.Sprintf(format, args...))
	}
	row("PHASE", "MEASUREMENT", "RESULT")
	if c := res.Create; c != nil {
		row("create", fmt.Sprintf("%d creates, one client", c.Sequential), "%.2f s (%.0f/s)", c.SequentialSeconds, c.SequentialRate)
		if c.Concurrent > 0 {
			row("create", fmt.Sprintf("%d creates, %d clients", c.Concurrent, c.Concurrency), "%.2f s (%.0f/s)", c.ConcurrentSeconds, c.ConcurrentRate)
		}
	}
	if g := res.Get; g != nil {
		latencyRow(row, "get", "GET /v1/nodes/{uuid}", *g)
	}
	if l := res.List; l != nil {
		latencyRow(row, "list", fmt.Sprintf("GET /v1/nodes?limit=%d", l.Limit), l.List)
		latencyRow(row, "list", fmt.Sprintf("GET /v1/nodes/detail?limit=%d", l.Limit), l.Detail)
	}
	if d := res.Deploy; d != nil {
		row("deploy", fmt.Sprintf("%d nodes: manage → all manageable", d.Nodes), "%.2f s", d.ManageSeconds)
		row("deploy", fmt.Sprintf("%d nodes: provide → all available", d.Nodes), "%.2f s", d.ProvideSeconds)
		row("deploy", fmt.Sprintf("%d nodes: first active request → all active", d.Nodes), "%.2f s", d.ActiveSeconds)
		row("deploy", fmt.Sprintf("%d nodes: manage → all active", d.Nodes), "%.2f s", d.TotalSeconds)
	}
	if m := res.Memory; m != nil {
		for _, p := range m.Processes {
			row("memory", p.Name+" RSS idle / end / peak", "%.1f / %.1f / %.1f MiB", p.IdleMiB, p.FinalMiB, p.PeakMiB)
		}
	}
	for _, p := range res.Phases {
		row("time", p.Name+" wall (CPU s)", "%.2f s%s", p.Seconds, cpuNote(p.CPU))
	}
	if res.Seconds > 0 {
		row("time", "whole run", "%.1f s", res.Seconds)
	}
	return tw.Flush()
}

func latencyRow(row func(phase, what, format string, args ...any), phase, what string, l latency) {
	row(phase, what+" p50 / p99", "%.2f / %.2f ms (n=%d, max %.2f ms)", l.P50, l.P99, l.Samples, l.Max)
}

// cpuNote lists CPU seconds by process, e.g. " (coordinator 3.10, redis-server 1.02)".
func cpuNote(cpu map[string]float64) string {
	if len(cpu) == 0 {
		return ""
	}
	names := make([]string, 0, len(cpu))
	for n := range cpu {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.2f", n, cpu[n])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
