package bilitest

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"image"
	_ "image/gif"  // register the GIF decoder for upload_bfs
	_ "image/jpeg" // register the JPEG decoder for upload_bfs
	_ "image/png"  // register the PNG decoder for upload_bfs
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

func sha1Hex(b []byte) string {
	h := sha1.Sum(b)
	return hex.EncodeToString(h[:])
}

func (s *Server) handleNav(w http.ResponseWriter, r *http.Request, ep string) {
	wbi := s.wbiImg()
	s.mu.Lock()
	a := s.accountForRequest(r)
	var acc Account
	if a != nil {
		acc = a.Account
	}
	s.mu.Unlock()
	if a == nil {
		s.writeEnv(w, ep, -101, codeMessage(-101), map[string]any{"isLogin": false, "wbi_img": wbi})
		return
	}
	type levelInfo struct {
		CurrentLevel int `json:"current_level"`
		CurrentMin   int `json:"current_min"`
		CurrentExp   int `json:"current_exp"`
		NextExp      any `json:"next_exp"`
	}
	type official struct {
		Role  int    `json:"role"`
		Title string `json:"title"`
		Desc  string `json:"desc"`
		Type  int    `json:"type"`
	}
	type verify struct {
		Type int    `json:"type"`
		Desc string `json:"desc"`
	}
	type wallet struct {
		Mid           int64 `json:"mid"`
		BcoinBalance  int   `json:"bcoin_balance"`
		CouponBalance int   `json:"coupon_balance"`
		CouponDueTime int   `json:"coupon_due_time"`
	}
	type nav struct {
		IsLogin        bool              `json:"isLogin"`
		EmailVerified  int               `json:"email_verified"`
		Face           string            `json:"face"`
		FaceNft        int               `json:"face_nft"`
		FaceNftType    int               `json:"face_nft_type"`
		LevelInfo      levelInfo         `json:"level_info"`
		Mid            int64             `json:"mid"`
		MobileVerified int               `json:"mobile_verified"`
		Money          float64           `json:"money"`
		Moral          int               `json:"moral"`
		Official       official          `json:"official"`
		OfficialVerify verify            `json:"officialVerify"`
		Scores         int               `json:"scores"`
		Uname          string            `json:"uname"`
		VipDueDate     int64             `json:"vipDueDate"`
		VipStatus      int               `json:"vipStatus"`
		VipType        int               `json:"vipType"`
		VipPayType     int               `json:"vip_pay_type"`
		VipThemeType   int               `json:"vip_theme_type"`
		Wallet         wallet            `json:"wallet"`
		HasShop        bool              `json:"has_shop"`
		ShopURL        string            `json:"shop_url"`
		AllowanceCount int               `json:"allowance_count"`
		AnswerStatus   int               `json:"answer_status"`
		IsSeniorMember int               `json:"is_senior_member"`
		WbiImg         map[string]string `json:"wbi_img"`
		IsJury         bool              `json:"is_jury"`
	}
	face := acc.Face
	if face == "" {
		face = "https://i0.hdslb.com/bfs/face/member/noface.jpg"
	}
	s.writeOK(w, ep, nav{
		IsLogin: true, EmailVerified: 1, Face: face,
		LevelInfo: levelInfo{CurrentLevel: 6, CurrentMin: 28800, CurrentExp: 52689, NextExp: "--"},
		Mid:       acc.UID, MobileVerified: 1, Money: 172.4, Moral: 70,
		Official: official{Type: -1}, OfficialVerify: verify{Type: -1},
		Uname: acc.Name, Wallet: wallet{Mid: acc.UID},
		ShopURL: "", WbiImg: wbi,
	})
}

type card struct {
	Mid     int64  `json:"mid"`
	Name    string `json:"name"`
	Face    string `json:"face"`
	Sign    string `json:"sign"`
	Rank    int    `json:"rank"`
	Level   int    `json:"level"`
	Silence int    `json:"silence"`
}

func (s *Server) handleCards(w http.ResponseWriter, r *http.Request, ep string) {
	if s.authAccount(w, r, ep) == nil {
		return
	}
	raw := r.URL.Query().Get("uids")
	if raw == "" {
		s.writeErr(w, ep, -400)
		return
	}
	var uids []int64
	for _, p := range strings.Split(raw, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil {
			s.writeErr(w, ep, -400)
			return
		}
		uids = append(uids, n)
	}
	out := []card{}
	if len(uids) <= 50 {
		s.mu.Lock()
		seen := map[int64]bool{}
		for _, uid := range uids {
			if seen[uid] {
				continue
			}
			seen[uid] = true
			if u := s.users[uid]; u != nil {
				lvl := u.Level
				if lvl == 0 {
					lvl = 5
				}
				out = append(out, card{Mid: u.UID, Name: u.Name, Face: u.Face, Sign: u.Sign, Rank: 10000, Level: lvl})
			} else if a := s.accounts[uid]; a != nil {
				out = append(out, card{Mid: a.UID, Name: a.Name, Face: a.Face, Rank: 10000, Level: 6})
			}
		}
		s.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		s.mu.Unlock()
	}
	s.writeOK(w, ep, out)
}

func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request, ep string) {
	a := s.authAccount(w, r, ep)
	if a == nil {
		return
	}
	formErr := r.ParseMultipartForm(32 << 20)
	if !s.checkCSRF(w, r, ep, a, false) {
		return
	}
	if formErr != nil {
		s.writeErr(w, ep, 4100001)
		return
	}
	file, _, err := r.FormFile("file_up")
	if err != nil {
		s.writeErr(w, ep, 4100001)
		return
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, 32<<20))
	if err != nil {
		s.writeErr(w, ep, 4100001)
		return
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	ext := map[string]string{"png": "png", "jpeg": "jpg", "gif": "gif"}[format]
	if err != nil || ext == "" {
		s.writeErr(w, ep, 4100001)
		return
	}
	category := r.FormValue("category")
	if category == "" {
		category = "daily"
	}
	switch category {
	case "daily":
	case "draw", "cos":
		if cfg.Width <= 420 || cfg.Height <= 420 {
			s.writeErr(w, ep, 4100001)
			return
		}
	default:
		s.writeErr(w, ep, 4100001)
		return
	}
	biz := r.FormValue("biz")
	dir := "new_dyn"
	if biz == "im" {
		dir = "im"
	}
	u := "http://i0.hdslb.com/bfs/" + dir + "/" + sha1Hex(data) + "." + ext
	s.mu.Lock()
	a.uploads = append(a.uploads, Upload{AccountUID: a.UID, Biz: biz, Category: category, ImageURL: u,
		Width: cfg.Width, Height: cfg.Height, Bytes: data})
	s.mu.Unlock()
	s.writeOK(w, ep, struct {
		ImageURL    string  `json:"image_url"`
		ImageWidth  int     `json:"image_width"`
		ImageHeight int     `json:"image_height"`
		ImgSize     float64 `json:"img_size"`
	}{u, cfg.Width, cfg.Height, math.Round(float64(len(data))/1024*1000) / 1000})
}
