package team

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters of new hashes: the OWASP minimum (19 MiB, two
// passes, one lane), which costs some tens of milliseconds: slow enough
// that a stolen bucket does not give its passwords away, fast enough for
// a login. Verification uses the parameters stored in each hash, so they
// can be raised later without invalidating old hashes.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Bounds on the parameters a stored hash may ask for: the bucket is
// shared, and a record written by someone else must not make a login
// allocate gigabytes or spin for minutes.
const (
	maxArgonMemory  = 256 * 1024 // KiB
	maxArgonTime    = 16
	maxArgonThreads = 16
)

// dummySalt salts the hash computed for a login of an unknown member,
// which only exists to take as long as a real check.
const dummySalt = "bilibridge-dummy"

// Passwords are bytes for argon2; these bound what a member may choose.
const (
	minPasswordLen = 8
	maxPasswordLen = 1024
)

// phcB64 is the PHC string format's base64: standard alphabet, no padding.
var phcB64 = base64.RawStdEncoding

// hashSecret hashes a password or token with argon2id under a fresh
// salt, encoded as a PHC string:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func hashSecret(secret string) string {
	salt := make([]byte, argonSaltLen)
	rand.Read(salt) // never fails (crypto/rand crashes the program instead)
	key := argon2.IDKey([]byte(secret), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, phcB64.EncodeToString(salt), phcB64.EncodeToString(key))
}

// verifySecret reports whether secret matches the PHC string encoded,
// re-deriving with the parameters stored there. An error means encoded is
// not a hash this package can check (a damaged record), not a mismatch.
func verifySecret(encoded, secret string) (bool, error) {
	h, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(secret), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}

// burnHash costs what verifySecret of a hash made by hashSecret costs, so
// that a login of an unknown member cannot be told from a wrong password
// by its duration.
func burnHash(secret string) {
	argon2.IDKey([]byte(secret), []byte(dummySalt), argonTime, argonMemory, argonThreads, argonKeyLen)
}

// phcHash is a parsed argon2id PHC string.
type phcHash struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

var errBadHash = errors.New("stored hash is not an argon2id PHC string")

func parsePHC(s string) (phcHash, error) {
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, key
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return phcHash{}, errBadHash
	}
	var h phcHash
	var seen [3]bool
	for kv := range strings.SplitSeq(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return phcHash{}, errBadHash
		}
		switch {
		case k == "m" && !seen[0] && n >= 8 && n <= maxArgonMemory:
			h.memory, seen[0] = uint32(n), true
		case k == "t" && !seen[1] && n >= 1 && n <= maxArgonTime:
			h.time, seen[1] = uint32(n), true
		case k == "p" && !seen[2] && n >= 1 && n <= maxArgonThreads:
			h.threads, seen[2] = uint8(n), true
		default:
			return phcHash{}, errBadHash
		}
	}
	if seen != [3]bool{true, true, true} {
		return phcHash{}, errBadHash
	}
	var err error
	if h.salt, err = phcB64.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return phcHash{}, errBadHash
	}
	if h.key, err = phcB64.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return phcHash{}, errBadHash
	}
	return h, nil
}

// checkNewPassword says what is wrong with a password a member chose.
func checkNewPassword(password string) error {
	switch {
	case len(password) < minPasswordLen:
		return inputErrorf("a password needs at least %d characters", minPasswordLen)
	case len(password) > maxPasswordLen:
		return inputErrorf("a password may have at most %d bytes", maxPasswordLen)
	}
	return nil
}

// GeneratePassword returns a random password that is easy to read out
// and type: four groups of five lower-case base32 characters, 100 bits.
func GeneratePassword() string {
	t := strings.ToLower(rand.Text()) // 26 base32 characters, 5 bits each
	return t[0:5] + "-" + t[5:10] + "-" + t[10:15] + "-" + t[15:20]
}
