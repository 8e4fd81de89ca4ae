// Package httpboot is the HTTP side of network boot: the per-machine
// iPXE scripts that the DHCP server points iPXE at, the agent kernel and
// initramfs they load, and the deploy images of the image cache. It is an
// http.Handler the coordinator mounts on its own listener.
package httpboot

import (
	"context"
	"errors"
	"fmt"
	"github.com/ingot/ingot/coordinator/boot/logonce"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/ingot/ingot/coordinator/boot"
)

// DefaultKernelArgs are the agent's extra kernel arguments when
// Config.ExtraKernelArgs is empty: a serial console, where BMC
// serial-over-LAN and QEMU show it.
const DefaultKernelArgs = "console=ttyS0,115200"

// ignoreLogEvery rate-limits the log line for a machine Ingot does not
// boot: unmanaged machines on the provisioning network can PXE in a loop.
const ignoreLogEvery = time.Minute

// Booter decides what a network-booting machine boots (boot.Policy).
type Booter interface {
	Decide(ctx context.Context, mac net.HardwareAddr) (boot.Decision, error)
}

// Config configures a Handler.
type Config struct {
	// BaseURL is where machines reach this handler, as the scripts name
	// it (e.g. http://192.0.2.1:8080). Required.
	BaseURL string
	// AgentKernel and AgentInitramfs are the files served at
	// /images/agent/kernel and /images/agent/initramfs. They are opened
	// per request, so a rebuild can replace them (by rename) any time.
	AgentKernel    string
	AgentInitramfs string
	// ImageDir holds the deploy images served at /images/cache/{name}.
	ImageDir string
	// CoordinatorGRPC (ingot.coordinator=) and CAFingerprint (ingot.ca=,
	// the SHA-256 fingerprint of the CA the agent pins) go on the agent's
	// command line, when set.
	CoordinatorGRPC string
	CAFingerprint   string
	// ExtraKernelArgs are appended to the agent's command line, separated
	// by spaces (default DefaultKernelArgs).
	ExtraKernelArgs string
	// LeaseOwner, when set, says which MAC holds the DHCP lease of an IP.
	// A machine may then fetch only its own script: another node's
	// script names that node to the agent. Leave it nil behind a proxy
	// DHCP, where Ingot does not know the leases.
	LeaseOwner func(ip netip.Addr) (mac string, ok bool)
	// RequireLease refuses scripts to clients without a lease: right when
	// Ingot is the network's only DHCP server (full mode), where every
	// machine that network-boots got its address from us.
	RequireLease bool
	// Logger receives request logs (default: discarded).
	Logger *slog.Logger
}

// Handler serves network boot over HTTP. Create it with New.
type Handler struct {
	cfg       Config
	base      string // BaseURL without a trailing slash
	extraArgs []string
	booter    Booter
	log       *slog.Logger
	ignoreLim *logonce.Limiter
	mux       *http.ServeMux
}

// New checks cfg and returns a Handler asking b what machines boot.
func New(cfg Config, b Booter) (*Handler, error) {
	if b == nil {
		return nil, errors.New("httpboot: nil Booter")
	}
	base, err := checkBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	for name, v := range map[string]string{"CoordinatorGRPC": cfg.CoordinatorGRPC, "CAFingerprint": cfg.CAFingerprint} {
		if !safeArg(v) {
			return nil, fmt.Errorf("httpboot: %s %q: not a single plain word", name, v)
		}
	}
	if cfg.ExtraKernelArgs == "" {
		cfg.ExtraKernelArgs = DefaultKernelArgs
	}
	extra := strings.Fields(cfg.ExtraKernelArgs)
	for _, a := range extra {
		if !safeArg(a) {
			return nil, fmt.Errorf("httpboot: kernel argument %q: quotes, backslashes, $ and non-ASCII are not allowed", a)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		cfg:       cfg,
		base:      base,
		extraArgs: extra,
		booter:    b,
		log:       cfg.Logger.With("component", "httpboot"),
		ignoreLim: logonce.New(ignoreLogEvery, 4096),
		mux:       http.NewServeMux(),
	}
	// GET patterns match HEAD too.
	h.mux.HandleFunc("GET /boot/{file}", h.serveScript)
	h.mux.HandleFunc("GET /images/agent/kernel", h.serveAgentFile(cfg.AgentKernel))
	h.mux.HandleFunc("GET /images/agent/initramfs", h.serveAgentFile(cfg.AgentInitramfs))
	h.mux.HandleFunc("GET /images/cache/{name}", h.serveCacheImage)
	return h, nil
}

func checkBaseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("httpboot: BaseURL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("httpboot: BaseURL %q: want http(s)://host[:port][/path]", s)
	}
	base := strings.TrimRight(u.String(), "/")
	if !safeArg(base) {
		return "", fmt.Errorf("httpboot: BaseURL %q: not a single plain word", s)
	}
	return base, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// ServeMux would answer ".." with a redirect to the cleaned path,
	// which is harmless, but no honest client sends one: refuse it
	// outright (the decoded path, so "..%2F" counts too).
	for elem := range strings.SplitSeq(r.URL.Path, "/") {
		if elem == ".." {
			http.Error(w, "invalid path", http.StatusBadRequest)
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

// serveScript answers GET /boot/{mac}.ipxe with the machine's iPXE
// script.
func (h *Handler) serveScript(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	macText, ok := strings.CutSuffix(file, ".ipxe")
	if !ok {
		http.NotFound(w, r)
		return
	}
	mac, err := parseMAC(macText)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	log := h.log.With("mac", mac.String(), "client", r.RemoteAddr)
	if !h.ownScript(r, mac, log) {
		http.Error(w, "this script belongs to another machine", http.StatusForbidden)
		return
	}

	d, err := h.booter.Decide(r.Context(), mac)
	if err != nil {
		log.Error("boot decision failed", "err", err)
		http.Error(w, "boot decision failed", http.StatusInternalServerError)
		return
	}
	if d.Node != "" && !safeNode(d.Node) {
		log.Error("boot decision names a node ID unfit for a script", "node", d.Node)
		http.Error(w, "boot decision failed", http.StatusInternalServerError)
		return
	}
	var script string
	switch d.Action {
	case boot.Agent:
		script = h.agentScript(mac, d.Node)
	case boot.LocalDisk:
		script = localDiskScript(mac, d.Node)
	default:
		if h.ignoreLim.Allow(mac.String(), time.Now()) {
			log.Info("not booting this machine")
		}
		http.Error(w, "no boot for this machine", http.StatusNotFound)
		return
	}
	log.Info("boot script", "action", d.Action.String(), "node", d.Node)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	// The answer follows the node's state: never reuse it.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", fmt.Sprint(len(script)))
	if _, err := w.Write([]byte(script)); err != nil {
		log.Debug("writing boot script", "err", err)
	}
}

// ownScript reports whether the client may fetch mac's script: with
// LeaseOwner set, a client holding a lease for another MAC may not.
// Clients without a lease (static addresses) are served unless
// RequireLease.
func (h *Handler) ownScript(r *http.Request, mac net.HardwareAddr, log *slog.Logger) bool {
	if h.cfg.LeaseOwner == nil {
		return true
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		log.Warn("refused script: cannot tell the client's address", "err", err)
		return false
	}
	owner, ok := h.cfg.LeaseOwner(ap.Addr().Unmap())
	if !ok {
		if h.cfg.RequireLease {
			log.Warn("refused script: the client holds no lease of ours", "client", ap.Addr())
		}
		return !h.cfg.RequireLease
	}
	ownerMAC, err := parseMAC(owner)
	if err != nil {
		// Fail closed: a lease table we cannot read vouches for no one.
		log.Warn("refused script: lease owner is not a MAC", "owner", owner)
		return false
	}
	if ownerMAC.String() != mac.String() {
		log.Warn("refused script of another machine", "lease_mac", ownerMAC.String())
		return false
	}
	return true
}
