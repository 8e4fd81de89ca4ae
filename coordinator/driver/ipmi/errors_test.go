package ipmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"
)

// Errors as go-ipmi v0.9.1 builds them. Connect formats the errors of
// every cipher suite it tried with %v, so only their text survives.
func connectErr(errs ...error) error {
	return fmt.Errorf("connect20 failed after try all cipher suite ids ([17 3]), errs: \n%v", errors.Join(errs...))
}

var (
	errWrongPassword = connectErr(
		fmt.Errorf("cmd: rakp1 failed with cipher suite id (17), err: validate rakp2 message failed, err: %w",
			fmt.Errorf("RAKP2 authentication code mismatch: %w", client.ErrRAKPAuthentication)))
	errNoDatagram  = errors.New("udp exchange: no datagram matched before deadline")
	errNoAnswerCmd = fmt.Errorf("IPMI LAN: no matching IPMI response (expected rqSeq 0x5, command 0x1) before UDP read deadline after 5 attempt(s): %w", errNoDatagram)
	errNoAnswerCap = fmt.Errorf("cmd: Get Channel Authentication Capabilities failed, err: %w",
		fmt.Errorf("IPMI LAN: no matching IPMI response (expected rqSeq 0x1, command 0x38) before UDP read deadline after 5 attempt(s): %w", errNoDatagram))
	errRefused = fmt.Errorf("cmd: Get Channel Authentication Capabilities failed, err: %w",
		fmt.Errorf("IPMI LAN: UDP exchange error after 5 attempt(s): %w",
			fmt.Errorf("read from conn failed, err: %w",
				&net.OpError{Op: "read", Net: "udp", Err: os.NewSyscallError("recvfrom", syscall.ECONNREFUSED)})))
)

func TestClassify(t *testing.T) {
	tgt := target{host: "192.0.2.10", port: 623, username: "admin", password: "s3cret-pw", priv: types.PrivilegeLevelAdministrator}
	for _, tc := range []struct {
		name  string
		err   error
		stage stage
		kind  Kind
		msg   string
	}{
		{"wrong password", errWrongPassword, stageLogin, Auth, "wrong user name or password"},
		{"unknown user (status)", connectErr(fmt.Errorf("cmd: rakp1 failed with cipher suite id (17), err: validate rakp2 message failed, err: %w",
			types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedName))), stageLogin, Auth, "wrong user name or password"},
		{"BMC rejects our RAKP 3", connectErr(fmt.Errorf("cmd: rakp3 failed with cipher suite id (3), err: validate rakp4 failed, err: %w",
			types.NewRmcpStatusError(types.RmcpStatusCodeInvalidIntegrityCheckValue))), stageLogin, Auth, "wrong user name or password"},
		{"privilege too high", connectErr(fmt.Errorf("cmd: rakp1 failed with cipher suite id (17), err: %w",
			types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedRoleOfPriLevel))), stageLogin, Auth, `user "admin" may not log in at privilege level ADMINISTRATOR`},
		{"privilege refused by Set Session Privilege", fmt.Errorf("SetSessionPrivilegeLevel to (ADMINISTRATOR) failed, err: %w",
			types.NewResponseError(0x81, "requested level not available for this user")), stageLogin, Auth, "refused the login"},
		{"unknown user, silent BMC", connectErr(fmt.Errorf("cmd: rakp1 failed with cipher suite id (17), err: IPMI LAN: UDP read timed out waiting for BMC response after 5 attempt(s): %w",
			&net.OpError{Op: "read", Net: "udp", Err: os.ErrDeadlineExceeded})), stageLogin, Auth, "unknown user name?"},
		{"no free session", connectErr(fmt.Errorf("cmd: RMCP+ Open Session failed with cipher suite id (17), err: %w",
			types.NewRmcpStatusError(types.RmcpStatusCodeNoResToCreateSess))), stageLogin, Protocol, "no free session"},
		{"cipher suite refused", connectErr(fmt.Errorf("cmd: RMCP+ Open Session failed with cipher suite id (17), err: %w",
			types.NewRmcpStatusError(types.RmcpStatusCodeNoCipherSuiteMatch))), stageLogin, Unsupported, "does not support"},
		{"nothing answers", errNoAnswerCap, stageLogin, Unreachable, "unreachable: no answer from the BMC within 5s"},
		{"connection refused", errRefused, stageLogin, Unreachable, "unreachable: connection refused"},
		{"unknown host", fmt.Errorf("cmd: Get Channel Authentication Capabilities failed, err: init udp connection failed, err: resolve addr failed, err: %w",
			&net.DNSError{Err: "no such host", Name: "bmc.invalid", IsNotFound: true}), stageLogin, Unreachable, "cannot resolve bmc.invalid"},
		{"login cut short by the deadline", connectErr(fmt.Errorf("cmd: RMCP+ Open Session failed with cipher suite id (17), err: client exchange failed, err: canceled from caller: %w",
			context.DeadlineExceeded)), stageLogin, Timeout, "timed out opening a session"},
		{"command unanswered", errNoAnswerCmd, stageCommand, Timeout, "timed out: no answer from the BMC within 5s"},
		{"command cut short by the deadline", fmt.Errorf("canceled from caller: %w", context.DeadlineExceeded), stageCommand, Timeout, "timed out"},
		{"reset while off", errNotSupported, stageCommand, Unsupported, "refused the command: Command not supported in present state (completion code 0xd5)"},
		{"invalid command", types.NewResponseError(types.CodeInvalidCommand, "x"), stageCommand, Unsupported, "completion code 0xc1"},
		{"insufficient privilege", types.NewResponseError(types.CodeInsufficientPrivilege, "x"), stageCommand, Auth, "insufficient privilege"},
		// go-ipmi reports an answer it cannot unpack as completion code 0.
		{"garbled answer", types.NewResponseError(types.CodeOK, "unpack response failed, err: short"), stageCommand, Protocol, "unexpected answer"},
		{"password quoted", errors.New("weird: s3cret-pw"), stageCommand, Protocol, "weird: ***"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := classify(tc.err, tgt, "power on", tc.stage, 5*time.Second)
			if e.Kind != tc.kind {
				t.Errorf("kind = %v, want %v (%v)", e.Kind, tc.kind, e)
			}
			if !strings.Contains(e.Error(), tc.msg) {
				t.Errorf("message %q lacks %q", e, tc.msg)
			}
			if !strings.HasPrefix(e.Error(), "IPMI power on of 192.0.2.10:623: ") {
				t.Errorf("message %q lacks the operation and BMC", e)
			}
			if strings.Contains(e.Error(), "s3cret-pw") {
				t.Errorf("message %q holds the password", e)
			}
		})
	}
}

func TestErrorUnwraps(t *testing.T) {
	tgt := target{host: "192.0.2.10", port: 623}
	e := classify(errRefused, tgt, "power on", stageLogin, time.Second)
	if !errors.Is(e, syscall.ECONNREFUSED) {
		t.Error("errors.Is(ECONNREFUSED) lost")
	}
	e = classify(errNotSupported, tgt, "reboot", stageCommand, time.Second)
	if re, ok := types.IsResponseError(e); !ok || re.CompletionCode() != types.CodeNotSupported {
		t.Error("completion code lost")
	}
	var pe *Error
	if !errors.As(fmt.Errorf("wrapped: %w", e), &pe) || pe.Op != "reboot" {
		t.Error("errors.As(*Error) failed")
	}
}

func TestKindRetryable(t *testing.T) {
	for k, want := range map[Kind]bool{Auth: false, Unsupported: false, Unreachable: true, Timeout: true, Protocol: true} {
		if k.retryable() != want {
			t.Errorf("%v.retryable() = %v", k, !want)
		}
	}
}
