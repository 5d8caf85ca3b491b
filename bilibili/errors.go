package bilibili

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Bilibili response codes the bridge branches on. The reference (§10, §2.16)
// lists them all; only the ones with a policy attached are named here.
const (
	CodeOK                 = 0
	CodeSystemError        = -3
	CodeNotLoggedIn        = -101
	CodeCSRFFailed         = -111
	CodeRiskControl        = -352
	CodeBadRequest         = -400
	CodeForbidden          = -403
	CodeIntercepted        = -412
	CodeServerError        = -500
	CodeServiceUnavailable = -503
	CodeGatewayTimeout     = -504
	CodeOverLimit          = -509
	CodeTooManyRequests    = -799
	CodeMsgKeyMissing      = 10005
	CodeTooLong            = 21007
	CodePhoneBinding       = 21015
	CodeSendTooFast        = 21020
	CodeMessageSelf        = 21026
	CodeUnavailable        = 21028
	CodeTypeNotAllowed     = 21035
	CodeIllegalImage       = 21037
	CodeRecallTooLate      = 21041
	CodeAlreadyRecalled    = 21042
	CodeSendBlocked        = 21046
	CodeStrangerLimit      = 21047
	CodePeerPrivacy        = 25003
	CodePeerBlacklisted    = 25005
	CodeGroupDissolved     = 700013
	CodeNotInGroup         = 700014
	CodeNeverChatted       = 1000004
	CodeQRNotScanned       = 86101
	CodeQRScanned          = 86090
	CodeQRExpired          = 86038
	CodeRefreshCSRFWrong   = 86095
	CodeUploadBadParams    = 4100001
)

// APIError is a response whose envelope carried a non-zero code. Bilibili
// answers most failures with HTTP 200 and the reason in `code`, so this is
// the error callers see most.
type APIError struct {
	Endpoint string // short name, e.g. "send_msg"
	Code     int
	Message  string
	// VVoucher is set on -352 answers; a human can clear it with a captcha.
	VVoucher string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("bilibili %s: code %d: %s", e.Endpoint, e.Code, e.Message)
}

// HTTPError is a response that was not HTTP 200.
type HTTPError struct {
	Endpoint   string
	StatusCode int
	// RetryAfter is what the server asked for in Retry-After, or zero.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("bilibili %s: HTTP %d", e.Endpoint, e.StatusCode)
}

// DecodeError is a 200 response whose body was not the JSON we expected.
// It is transient: Bilibili's edge sometimes answers with an HTML page.
type DecodeError struct {
	Endpoint string
	Snippet  string // the first bytes of the body, for the log
	Err      error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("bilibili %s: malformed response (%v): %q", e.Endpoint, e.Err, e.Snippet)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// TransportError is a failure to get any response: connection refused,
// reset, DNS, or the per-call timeout.
type TransportError struct {
	Endpoint string
	Err      error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("bilibili %s: %v", e.Endpoint, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// Class says what a caller should do about an error.
//
// The rule for what we do not know: an error code that is not listed
// here is treated as passing (ClassUnknown is retryable), never as
// final. A wrong "final" loses a message for good; a wrong "passing"
// costs a few retries.
type Class int

const (
	// ClassUnknown is an error no policy below covers, such as a code
	// Bilibili has never documented. It is retried with backoff, and a
	// send that ends in it may have gone out.
	ClassUnknown Class = iota
	// ClassLoginExpired: the cookies no longer work (-101, -111). Pause and
	// ask the operator to log in again.
	ClassLoginExpired
	// ClassRiskControl: Bilibili's risk control refused the request (-352,
	// -412, -799). Back off hard.
	ClassRiskControl
	// ClassRateLimited: sending too fast (21020, -509). Retry later.
	ClassRateLimited
	// ClassBlocked: sending is blocked for a day (21046). Stop sending.
	ClassBlocked
	// ClassRefusedByPeer: the other side does not accept the message
	// (21047, 25003, 25005). Retrying cannot help.
	ClassRefusedByPeer
	// ClassInvalidRequest: the request itself is wrong (21007, 21026, 21035,
	// 21037, -400). Retrying the same request cannot help.
	ClassInvalidRequest
	// ClassTransient: HTTP 5xx, timeouts, connection errors, malformed
	// bodies, Bilibili's busy backend (-3, -500, -503, -504, 21028).
	// Retry with backoff; a send that ends in it may have gone out.
	ClassTransient
	// ClassPermanent: Bilibili refused for good for a reason none of the
	// classes above names: the fan group was dissolved or left (700013,
	// 700014), the account must bind a phone (21015), a recall came too
	// late (21041, 21042, 10005).
	ClassPermanent
)

var classNames = map[Class]string{
	ClassUnknown:        "unknown",
	ClassLoginExpired:   "login_expired",
	ClassRiskControl:    "risk_control",
	ClassRateLimited:    "rate_limited",
	ClassBlocked:        "blocked",
	ClassRefusedByPeer:  "refused_by_peer",
	ClassInvalidRequest: "invalid_request",
	ClassTransient:      "transient",
	ClassPermanent:      "permanent",
}

func (c Class) String() string { return classNames[c] }

// Retryable reports whether the same request may succeed later.
func (c Class) Retryable() bool {
	switch c {
	case ClassRiskControl, ClassRateLimited, ClassTransient, ClassUnknown:
		return true
	}
	return false
}

// Classify sorts err into a Class. A nil error is ClassUnknown.
func Classify(err error) Class {
	if err == nil {
		return ClassUnknown
	}
	var api *APIError
	if errors.As(err, &api) {
		return classifyCode(api.Code)
	}
	var he *HTTPError
	if errors.As(err, &he) {
		switch {
		case he.StatusCode == 412:
			return ClassRiskControl
		case he.StatusCode == 429:
			return ClassRateLimited
		case he.StatusCode >= 500 || he.StatusCode == 408:
			return ClassTransient
		}
		return ClassUnknown
	}
	var de *DecodeError
	var te *TransportError
	if errors.As(err, &de) || errors.As(err, &te) {
		return ClassTransient
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return ClassTransient
	}
	return ClassUnknown
}

func classifyCode(code int) Class {
	switch code {
	case CodeNotLoggedIn, CodeCSRFFailed:
		return ClassLoginExpired
	case CodeRiskControl, CodeIntercepted, CodeTooManyRequests:
		return ClassRiskControl
	case CodeSendTooFast, CodeOverLimit:
		return ClassRateLimited
	case CodeSendBlocked:
		return ClassBlocked
	case CodeStrangerLimit, CodePeerPrivacy, CodePeerBlacklisted:
		return ClassRefusedByPeer
	case CodeTooLong, CodeMessageSelf, CodeTypeNotAllowed, CodeIllegalImage, CodeBadRequest:
		return ClassInvalidRequest
	case CodeSystemError, CodeServerError, CodeServiceUnavailable, CodeGatewayTimeout, CodeUnavailable:
		return ClassTransient
	case CodeGroupDissolved, CodeNotInGroup, CodePhoneBinding, CodeMsgKeyMissing, CodeRecallTooLate, CodeAlreadyRecalled:
		return ClassPermanent
	}
	return ClassUnknown
}

// MaybeTookEffect reports whether a request that failed with err may
// still have been carried out: no answer came, the server failed, or it
// answered with a code we do not know. A send that failed so must be
// looked for before it is sent again.
func MaybeTookEffect(err error) bool {
	if err == nil {
		return false
	}
	c := Classify(err)
	return c == ClassTransient || c == ClassUnknown
}

// Code returns the Bilibili code carried by err, or 0 when err is not an
// API error.
func Code(err error) int {
	var api *APIError
	if errors.As(err, &api) {
		return api.Code
	}
	return 0
}

// IsLoginExpired reports whether err means the cookies no longer work.
func IsLoginExpired(err error) bool { return Classify(err) == ClassLoginExpired }

// IsRiskControl reports whether Bilibili's risk control refused the request.
func IsRiskControl(err error) bool { return Classify(err) == ClassRiskControl }

// IsRateLimited reports whether the account sent too fast and should retry later.
func IsRateLimited(err error) bool { return Classify(err) == ClassRateLimited }

// IsBlocked reports whether sending is blocked for a day.
func IsBlocked(err error) bool { return Classify(err) == ClassBlocked }

// IsRefusedByPeer reports whether the recipient does not accept the message.
func IsRefusedByPeer(err error) bool { return Classify(err) == ClassRefusedByPeer }

// IsInvalidRequest reports whether the request itself was refused as invalid.
func IsInvalidRequest(err error) bool { return Classify(err) == ClassInvalidRequest }

// IsTransient reports whether the failure was on the way (5xx, timeout,
// connection, malformed body) and a retry with backoff may succeed.
func IsTransient(err error) bool { return Classify(err) == ClassTransient }

// Reason renders err for the person who typed a reply: plain words, no
// codes they cannot act on.
func Reason(err error) string {
	switch Code(err) {
	case CodeStrangerLimit:
		return "Bilibili allows only one message to this user until they reply or follow the account."
	case CodePeerPrivacy:
		return "This user's privacy settings do not accept messages from the account."
	case CodePeerBlacklisted:
		return "The account has blacklisted this user; remove them from the blacklist first."
	case CodeSendBlocked:
		return "Bilibili has blocked sending from this account for 24 hours because it sent too often."
	case CodeSendTooFast:
		return "Bilibili says the account is sending too fast; try again in a moment."
	case CodeTooLong:
		return "The message is too long for Bilibili."
	case CodeMessageSelf:
		return "Bilibili does not allow messaging the account itself."
	case CodeIllegalImage:
		return "Bilibili refused the image (it is not on Bilibili's image host)."
	case CodePhoneBinding:
		return "The account must bind a phone number before it can send messages."
	case CodeTypeNotAllowed:
		return "Bilibili does not allow sending this type of message."
	case CodeGroupDissolved:
		return "The fan group was dissolved."
	case CodeNotInGroup:
		return "The account is no longer in this fan group."
	}
	switch Classify(err) {
	case ClassLoginExpired:
		return "The Bilibili login has expired; run `bilibridge login` again."
	case ClassRiskControl:
		return "Bilibili's risk control refused the request; the bridge is backing off."
	case ClassTransient:
		return "Bilibili could not be reached; the bridge will retry."
	}
	var api *APIError
	if errors.As(err, &api) {
		return "Bilibili refused the message: " + api.Message + " (code " + strconv.Itoa(api.Code) + ")."
	}
	return "The message could not be sent."
}
