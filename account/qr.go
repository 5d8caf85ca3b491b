package account

import (
	"fmt"
	"io"
	"strings"

	"github.com/skip2/go-qrcode"
)

// WriteTerminalQR draws content as a QR code with half-block characters:
// two modules per character cell, so a login code (about 41 modules plus
// the quiet zone) fits in 50 columns and 25 lines.
func WriteTerminalQR(w io.Writer, content string) error {
	q, err := qrcode.New(content, qrcode.Low)
	if err != nil {
		return fmt.Errorf("encoding the QR code: %w", err)
	}
	bits := q.Bitmap() // includes a 4-module quiet zone
	var b strings.Builder
	for y := 0; y < len(bits); y += 2 {
		for x := range bits[y] {
			top := bits[y][x]
			bottom := y+1 < len(bits) && bits[y+1][x]
			// Dark modules are drawn as spaces on a light terminal and the
			// other way round, so draw light ones: scanners need dark
			// modules on a light background.
			switch {
			case !top && !bottom:
				b.WriteRune('█')
			case !top:
				b.WriteRune('▀')
			case !bottom:
				b.WriteRune('▄')
			default:
				b.WriteRune(' ')
			}
		}
		b.WriteByte('\n')
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// WriteQRPNG writes content as a PNG QR code, for terminals that cannot
// show the drawn one.
func WriteQRPNG(path, content string) error {
	return qrcode.WriteFile(content, qrcode.Medium, 320, path)
}
