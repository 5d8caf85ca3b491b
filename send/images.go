package send

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/netguard"
)

// MaxImageBytes is the largest image the sender downloads for a reply.
const MaxImageBytes = 10 << 20

// imageTypes are the formats upload_bfs accepts, by detected MIME type,
// with the imageType send_msg wants.
var imageTypes = map[string]string{
	"image/jpeg": "jpeg",
	"image/png":  "png",
	"image/gif":  "gif",
}

// ImageFetcher downloads the image of an image_url send command: http or
// https only, at most MaxBytes, and only JPEG, PNG or GIF (by content, not
// by the server's Content-Type).
//
// By default it refuses to connect to loopback, private, link-local and
// other non-public addresses, so that a reply cannot make the bridge read
// from the network it runs in (cloud metadata endpoints included).
type ImageFetcher struct {
	// Timeout bounds one download; default 30s.
	Timeout time.Duration
	// MaxBytes bounds the image; default MaxImageBytes.
	MaxBytes int64
	// AllowPrivateNetworks lets URLs reach loopback and private addresses
	// (tests, or a trusted LAN image server).
	AllowPrivateNetworks bool
	// AllowAddrs are "ip:port" addresses reachable despite being local:
	// the bridge's own HTTP server, which serves Telegram photos.
	AllowAddrs []string
	// Client replaces the HTTP client (tests); when set, the address check
	// above is the caller's business.
	Client *http.Client
	// Uploads is the store of images pasted in the browser inbox (bucket
	// bili_uploads). An image_url of GET /api/v1/images/{id} on a loopback
	// address, which the API hands out for them, is read from it: any
	// bridge process can send it, whichever process received the upload
	// and whatever port it listens on. nil: fetched over HTTP.
	Uploads jetstream.ObjectStore
}

// uploadsPath is where the API serves uploaded images.
const uploadsPath = "/api/v1/images/"

// uploadID is the id of an uploaded image when raw is the API's URL of
// one, on a loopback address.
func uploadID(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.RawQuery != "" || !strings.HasPrefix(u.Path, uploadsPath) {
		return "", false
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return "", false
	}
	id := strings.TrimPrefix(u.Path, uploadsPath)
	if id == "" || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		return "", false
	}
	return id, true
}

// fromUploads reads the uploaded image id.
func (f *ImageFetcher) fromUploads(ctx context.Context, id string, limit int64) (*FetchedImage, error) {
	data, err := f.Uploads.GetBytes(ctx, id)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, &ImageError{Reason: "no such uploaded image (they are kept for a day)"}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the uploaded image: %w", err)
	}
	return checkImage(data, "image", limit)
}

// ImageError is a download that cannot succeed by retrying: bad URL, 4xx,
// not an image, too large.
type ImageError struct{ Reason string }

func (e *ImageError) Error() string { return e.Reason }

// FetchedImage is a downloaded image.
type FetchedImage struct {
	Data     []byte
	Type     string // jpeg, png or gif
	Filename string
}

// CheckImageURL reports whether raw is an absolute http(s) URL.
func CheckImageURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &ImageError{Reason: "image_url must be an absolute http or https URL"}
	}
	if u.User != nil {
		return &ImageError{Reason: "image_url must not carry credentials"}
	}
	return nil
}

// Fetch downloads raw. Errors are *ImageError when retrying cannot help;
// other errors (timeouts, 5xx, connection failures) may pass.
func (f *ImageFetcher) Fetch(ctx context.Context, raw string) (*FetchedImage, error) {
	if err := CheckImageURL(raw); err != nil {
		return nil, err
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	limit := f.MaxBytes
	if limit <= 0 {
		limit = MaxImageBytes
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if id, ok := uploadID(raw); ok && f.Uploads != nil {
		return f.fromUploads(ctx, id, limit)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, &ImageError{Reason: "image_url is not a valid URL"}
	}
	req.Header.Set("Accept", "image/jpeg, image/png, image/gif")
	resp, err := f.client().Do(req)
	if err != nil {
		if errors.Is(err, netguard.ErrPrivateAddress) {
			return nil, &ImageError{Reason: "image_url points to a private or local network address"}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry a token in its query: keep it out of logs
		}
		return nil, fmt.Errorf("downloading the image: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode >= 500 || resp.StatusCode == 408 || resp.StatusCode == 429 {
			return nil, fmt.Errorf("downloading the image: HTTP %d", resp.StatusCode)
		}
		return nil, &ImageError{Reason: fmt.Sprintf("downloading the image failed: HTTP %d", resp.StatusCode)}
	}
	if resp.ContentLength > limit {
		return nil, &ImageError{Reason: fmt.Sprintf("the image is larger than %d MiB", limit>>20)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("downloading the image: %w", err)
	}
	return checkImage(data, path.Base(resp.Request.URL.Path), limit)
}

// checkImage accepts data as a JPEG, PNG or GIF of at most limit bytes,
// named after name.
func checkImage(data []byte, name string, limit int64) (*FetchedImage, error) {
	if int64(len(data)) > limit {
		return nil, &ImageError{Reason: fmt.Sprintf("the image is larger than %d MiB", limit>>20)}
	}
	typ, ok := imageTypes[http.DetectContentType(data)]
	if !ok {
		return nil, &ImageError{Reason: "image_url is not a JPEG, PNG or GIF image"}
	}
	if name == "" || name == "/" || name == "." || strings.ContainsAny(name, `"\`) {
		name = "image"
	}
	if ext := "." + typ; !strings.HasSuffix(strings.ToLower(name), ext) && !(typ == "jpeg" && strings.HasSuffix(strings.ToLower(name), ".jpg")) {
		name += ext
	}
	return &FetchedImage{Data: data, Type: typ, Filename: name}, nil
}

func (f *ImageFetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return netguard.Client(netguard.Options{AllowPrivate: f.AllowPrivateNetworks, AllowAddrs: f.AllowAddrs})
}
