package ipmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"
)

// Kind says what went wrong talking to a BMC, which decides whether a
// command is worth trying again.
type Kind int

const (
	// Auth: the BMC refused the login (wrong user name or password, or a
	// privilege level the user may not have) or the command's privilege.
	Auth Kind = iota + 1
	// Unreachable: nothing answers at the BMC's address (refused, no route,
	// unknown host, or silence from the first packet on).
	Unreachable
	// Timeout: the BMC stopped answering within the command timeout, or a
	// power change did not show within its timeout.
	Timeout
	// Unsupported: the BMC answered with a completion code refusing the
	// command (0xD5 "not supported in present state", ...), or it offers
	// none of the cipher suites asked for.
	Unsupported
	// Protocol: anything else: a malformed or unexpected answer, or a BMC
	// with no free session.
	Protocol
)

func (k Kind) String() string {
	switch k {
	case Auth:
		return "auth"
	case Unreachable:
		return "unreachable"
	case Timeout:
		return "timeout"
	case Unsupported:
		return "unsupported"
	case Protocol:
		return "protocol"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// retryable reports whether a fresh session and another try may help.
// Completion codes and refused logins are the BMC's answer: asking again
// gets the same answer (and, for a login, may lock the account).
func (k Kind) retryable() bool {
	return k == Unreachable || k == Timeout || k == Protocol
}

// Error is a failed IPMI operation. Its message is meant for last_error:
// plain words first, e.g. "IPMI power on of 192.0.2.10:623: wrong user
// name or password"; the go-ipmi error it came from stays reachable with
// errors.Is and errors.As. It never holds credentials.
type Error struct {
	Kind Kind
	BMC  string // host:port
	Op   string // "power on", "set boot device", ...
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("IPMI %s of %s: %v", e.Op, e.BMC, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// reason is a plain-words description of a go-ipmi error that keeps the
// original in its chain.
type reason struct {
	msg string
	err error
}

func (r *reason) Error() string { return r.msg }
func (r *reason) Unwrap() error { return r.err }

func because(err error, format string, args ...any) error {
	return &reason{msg: fmt.Sprintf(format, args...), err: err}
}

// stage is where in a command an error happened: opening the session
// (login) or running the command on an open one.
type stage int

const (
	stageLogin stage = iota
	stageCommand
)

// rmcpStatus finds an RMCP+ status code in go-ipmi's text. Connect
// formats the errors of every cipher suite it tried with %v, so their
// chains are lost and only the text is left to read.
var rmcpStatus = regexp.MustCompile(`RMCP\+ status (0x[0-9a-fA-F]+)`)

// classify turns an error from go-ipmi into an *Error saying which kind of
// failure it is, in words an operator can act on. t is the BMC, timeout
// the command timeout (for the message).
func classify(err error, t target, op string, st stage, timeout time.Duration) *Error {
	kind, why := explain(err, t, st, timeout)
	return &Error{Kind: kind, BMC: t.addr(), Op: op, Err: why}
}

func explain(err error, t target, st stage, timeout time.Duration) (Kind, error) {
	text := err.Error()
	// A completion code is the BMC's considered answer to a command.
	if re, ok := types.IsResponseError(err); ok && re.CompletionCode() != types.CodeOK {
		cc := re.CompletionCode()
		switch {
		case st == stageLogin:
			// Only Get Channel Authentication Capabilities and Set Session
			// Privilege Level answer with codes during a login; both mean
			// the privilege level asked for is not the user's.
			return Auth, because(err, "the BMC refused the login of user %q at privilege level %s: %s", t.username, privName(t.priv), ccText(re))
		case cc == types.CodeInsufficientPrivilege:
			return Auth, because(err, "insufficient privilege for this command at level %s (completion code 0xd4); check ipmi_priv_level", privName(t.priv))
		}
		return Unsupported, because(err, "the BMC refused the command: %s", ccText(re))
	}
	if why, ok := netFailure(err); ok {
		return Unreachable, because(err, "unreachable: %s", why)
	}
	if errors.Is(err, client.ErrRAKPAuthentication) || strings.Contains(text, client.ErrRAKPAuthentication.Error()) {
		return Auth, because(err, "wrong user name or password")
	}
	if m := rmcpStatus.FindStringSubmatch(text); m != nil {
		code, _ := strconv.ParseUint(m[1], 0, 8)
		switch types.RmcpStatusCode(code) {
		case types.RmcpStatusCodeUnauthorizedName, types.RmcpStatusCodeInvalidIntegrityCheckValue, types.RmcpStatusCodeUnauthorizedGUID, types.RmcpStatusCodeInvalidNameLength:
			return Auth, because(err, "wrong user name or password")
		case types.RmcpStatusCodeInvalidRole, types.RmcpStatusCodeUnauthorizedRoleOfPriLevel:
			return Auth, because(err, "user %q may not log in at privilege level %s (ipmi_priv_level)", t.username, privName(t.priv))
		case types.RmcpStatusCodeNoResToCreateSess, types.RmcpStatusCodeNoResToCreateSessAtRole:
			return Protocol, because(err, "the BMC has no free session (too many open sessions)")
		case types.RmcpStatusCodeInvalidAuthAlg, types.RmcpStatusCodeInvalidIntegrityAlg, types.RmcpStatusCodeInvalidConfidentAlg,
			types.RmcpStatusCodeNoMatchingAuthPayload, types.RmcpStatusCodeNoMatchingIntegrityPayload, types.RmcpStatusCodeNoCipherSuiteMatch:
			return Unsupported, because(err, "the BMC does not support %s", cipherName(t))
		}
		return Protocol, because(err, "the BMC refused the session: %s", types.RmcpStatusCode(code))
	}
	if noAnswer(err) {
		if st == stageCommand {
			return Timeout, because(err, "timed out: no answer from the BMC within %s", timeout)
		}
		switch {
		case strings.Contains(text, "Get Channel Authentication Capabilities"):
			// The very first packet of a login: nothing is listening.
			return Unreachable, because(err, "unreachable: no answer from the BMC within %s", timeout)
		case strings.Contains(text, "rakp1 failed"):
			// The BMC answered until it saw the user name: some BMCs stay
			// silent for a user they do not know.
			return Auth, because(err, "the BMC stopped answering when user %q logged in (unknown user name?)", t.username)
		}
		return Timeout, because(err, "timed out opening a session: the BMC stopped answering within %s", timeout)
	}
	return Protocol, because(err, "unexpected answer from the BMC: %s", redact(text, t))
}

// netFailure recognizes errors of the network itself: nobody listening,
// no route, no such host.
func netFailure(err error) (string, bool) {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return "cannot resolve " + dns.Name, true
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (nothing listens on the IPMI port)", true
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host", true
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable", true
	}
	// Connect's lost chains (see rmcpStatus) leave only the words.
	text := err.Error()
	for _, s := range []string{"connection refused", "no route to host", "network is unreachable"} {
		if strings.Contains(text, s) {
			return s, true
		}
	}
	return "", false
}

// noAnswer recognizes the ways go-ipmi says the BMC did not answer in
// time: its own UDP read deadline (retried, then "no matching IPMI
// response" or "UDP read timed out"), or the context's deadline.
func noAnswer(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	text := err.Error()
	for _, s := range []string{"deadline exceeded", "timed out", "no matching IPMI response", "no UDP datagram matched", "i/o timeout"} {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// ccText describes a completion code, by the command's own meaning of it
// when go-ipmi knows one.
func ccText(re *types.ResponseError) string {
	cc := re.CompletionCode()
	code := fmt.Sprintf("completion code %#02x", uint8(cc))
	desc := cc.String()
	if _, d, ok := strings.Cut(re.Error(), "is not normal: "); ok && d != "" {
		desc = d
	}
	if strings.HasPrefix(desc, "0x") {
		return code
	}
	return desc + " (" + code + ")"
}

// isCompletionCode reports whether err is the BMC refusing a command, as
// opposed to the exchange failing.
func isCompletionCode(err error) bool {
	re, ok := types.IsResponseError(err)
	return ok && re.CompletionCode() != types.CodeOK
}

// redact keeps the password out of text from go-ipmi, should it ever
// quote it. Only go-ipmi's words are redacted: the driver's own never hold
// a password, and a short one would garble them.
func redact(text string, t target) string {
	if t.password == "" {
		return text
	}
	return strings.ReplaceAll(text, t.password, "***")
}

func cipherName(t target) string {
	if t.cipher == 0 {
		return "any cipher suite the client offers"
	}
	return fmt.Sprintf("cipher suite %d (ipmi_cipher_suite)", t.cipher)
}
