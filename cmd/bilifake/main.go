// Command bilifake serves the bilitest fake Bilibili with a seeded demo
// account, for trying bilibridge without a real account:
//
//	go run ./cmd/bilifake -addr 127.0.0.1:8081 -traffic 5s
//
// It prints the environment variables that point bilibridge at it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/bilibridge/bilibridge/bilibili/bilitest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	traffic := flag.Duration("traffic", 0, "inject a random message from a random talker this often (0 = off)")
	verbose := flag.Bool("v", false, "log every request")
	autoLogin := flag.Duration("auto-login", 0, "scan and confirm every QR login as the demo account after this long (0 = never), for trying `bilibridge login`")
	anyUA := flag.Bool("any-ua", false, "accept any User-Agent (by default curl/python/Go-http-client get code -412)")
	flag.Parse()

	s := bilitest.New()
	acc := s.SeedDemo()
	if *verbose {
		s.SetLogf(log.Printf)
	}
	if *anyUA {
		s.SetUserAgentCheck(false)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Printf("bilifake: fake Bilibili listening on %s\n", base)
	fmt.Printf("bilifake: demo account %q uid %d; use:\n", acc.Name, acc.UID)
	fmt.Printf("export BILI_API_URL=%s BILI_MAIN_API_URL=%s BILI_PASSPORT_URL=%s BILI_WWW_URL=%s\n", base, base, base, base)
	fmt.Printf("export BILI_UID=%d BILI_SESSDATA='%s' BILI_JCT=%s\n", acc.UID, acc.SESSDATA, acc.BiliJct)
	if *traffic > 0 {
		fmt.Printf("bilifake: injecting a random message every %s\n", *traffic)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *traffic > 0 {
		go s.Traffic(ctx, acc.UID, *traffic, func(m bilitest.Message, d bilitest.Delivered) {
			log.Printf("bilifake: delivered msg_type %d in %d/%d msg_key %d seqno %d", m.MsgType, m.SessionType, m.TalkerID, d.MsgKey, d.Seqno)
		})
	}

	if *autoLogin > 0 {
		fmt.Printf("bilifake: QR logins are confirmed as the demo account after %s\n", *autoLogin)
		go func() {
			seen := map[string]bool{}
			for ctx.Err() == nil {
				for _, k := range s.QRKeys() {
					if !seen[k] {
						seen[k] = true
						time.AfterFunc(*autoLogin/2, func() { s.ScanQR(k) })
						time.AfterFunc(*autoLogin, func() { s.ConfirmQR(k, acc.UID) })
					}
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}

	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
