package bilibili

import (
	"encoding/json"
	"strconv"
	"strings"
)

// ShareContent is a share card (msg_type 7): a video, article, bangumi, …
// snapshotted when it was shared.
type ShareContent struct {
	Author   string `json:"author,omitempty"`
	Headline string `json:"headline"`
	ID       int64  `json:"id"`
	// Source says what ID points at (5 video, 6 article, 16 episode, …).
	Source     int    `json:"source"`
	SourceDesc string `json:"source_desc,omitempty"`
	Thumb      string `json:"thumb"`
	Title      string `json:"title"`
	URL        string `json:"url,omitempty"`
	Bvid       string `json:"bvid,omitempty"`
}

// Kind implements Content.
func (c *ShareContent) Kind() Kind { return KindShare }

// Link is the url the card carries, or one derived from source and id when
// that mapping is unambiguous; "" otherwise.
func (c *ShareContent) Link() string {
	if c.URL != "" {
		return c.URL
	}
	if c.Source == 5 && c.Bvid != "" {
		return contentVideoURL(c.Bvid, 0)
	}
	if c.ID <= 0 {
		return ""
	}
	id := strconv.FormatInt(c.ID, 10)
	switch c.Source {
	case 4:
		return "https://live.bilibili.com/" + id
	case 5, 9:
		return contentVideoURL("", c.ID)
	case 6:
		return contentArticleURL(c.ID)
	case 7:
		return "https://www.bilibili.com/bangumi/play/ss" + id
	case 8:
		return "https://www.bilibili.com/audio/au" + id
	case 11:
		return "https://t.bilibili.com/" + id
	case 16:
		return "https://www.bilibili.com/bangumi/play/ep" + id
	}
	return ""
}

// Text implements Content.
func (c *ShareContent) Text() string {
	return contentLines(contentHeader("share", contentFirst(c.Title, c.Headline)), c.Link())
}

// Images implements Content.
func (c *ShareContent) Images() []Image { return nil }

// Card implements Content.
func (c *ShareContent) Card() *Card {
	title := contentFirst(c.Title, c.Headline)
	desc := c.Author
	if c.Headline != "" && c.Headline != title {
		desc = contentLines(c.Headline, c.Author)
	}
	return &Card{Title: title, Description: contentLines(desc, c.SourceDesc), URL: c.Link(), Cover: c.Thumb}
}

// MiniProgramContent is a shared mini-program (msg_type 9, rare).
type MiniProgramContent struct {
	Avatar     string `json:"avatar"`
	Cover      string `json:"cover"`
	ID         string `json:"id"`
	JumpURI    string `json:"jump_uri"`
	LabelCover string `json:"label_cover"`
	LabelName  string `json:"label_name"`
	Name       string `json:"name"`
	Title      string `json:"title"`
}

// Kind implements Content.
func (c *MiniProgramContent) Kind() Kind { return KindShare }

// Text implements Content.
func (c *MiniProgramContent) Text() string {
	return contentLines(contentHeader("mini-program", contentFirst(c.Title, c.Name)), c.JumpURI)
}

// Images implements Content.
func (c *MiniProgramContent) Images() []Image { return nil }

// Card implements Content.
func (c *MiniProgramContent) Card() *Card {
	title := contentFirst(c.Title, c.Name)
	desc := c.LabelName
	if c.Name != "" && c.Name != title {
		desc = contentLines(c.Name, c.LabelName)
	}
	return &Card{Title: title, Description: desc, URL: c.JumpURI, Cover: contentFirst(c.Cover, c.Avatar)}
}

// defaultButtonText is the label the official client shows for a button
// that has a link but no text.
const defaultButtonText = "查看详情"

// NoticeContent is a notification card from a system session (msg_type 10).
// The root jump_* fields are the legacy button set; the *_config objects
// override them per platform.
type NoticeContent struct {
	Title string `json:"title"`
	// Body is the "text" field; it cannot be called Text next to the method.
	Body           string            `json:"text"`
	JumpText       string            `json:"jump_text"`
	JumpURI        string            `json:"jump_uri"`
	Modules        []NoticeModule    `json:"modules"`
	JumpText2      string            `json:"jump_text_2"`
	JumpURI2       string            `json:"jump_uri_2"`
	JumpText3      string            `json:"jump_text_3"`
	JumpURI3       string            `json:"jump_uri_3"`
	Notifier       *NoticeNotifier   `json:"notifier"`
	JumpURIConfig  *NoticeJumpConfig `json:"jump_uri_config,omitempty"`
	JumpURI2Config *NoticeJumpConfig `json:"jump_uri_2_config,omitempty"`
	JumpURI3Config *NoticeJumpConfig `json:"jump_uri_3_config,omitempty"`
	BizContent     *NoticeBizContent `json:"biz_content"`
}

// NoticeModule is a key/value row of a notice.
type NoticeModule struct {
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

// NoticeNotifier is who the notice is about or from.
type NoticeNotifier struct {
	AvatarURL string `json:"avatar_url"`
	Nickname  string `json:"nickname"`
	JumpURL   string `json:"jump_url"`
}

// NoticeJumpConfig is a button's per-platform links. A uri key is absent
// when the button does not exist on that platform.
type NoticeJumpConfig struct {
	AllURI     string `json:"all_uri,omitempty"`
	AndroidURI string `json:"android_uri,omitempty"`
	IphoneURI  string `json:"iphone_uri,omitempty"`
	IpadURI    string `json:"ipad_uri,omitempty"`
	WebURI     string `json:"web_uri,omitempty"`
	Text       string `json:"text"`
}

// NoticeBizContent describes the object a notice is about (a live room, …).
type NoticeBizContent struct {
	Cover       string `json:"cover"`
	BackupCover string `json:"backup_cover"`
	RefreshType int    `json:"refresh_type"`
	BizType     int    `json:"biz_type"`
	BizID1      string `json:"biz_id1"`
	BizID2      string `json:"biz_id2"`
	BizStatus   int    `json:"biz_status"`
}

// Kind implements Content.
func (c *NoticeContent) Kind() Kind { return KindNotice }

// Buttons resolves the up to three buttons the way the official client
// does: the link is the config's web_uri (we are a web client), else its
// all_uri, else the root jump_uri; a button without a link is hidden. The
// label is the config's text, else the root jump_text, else "查看详情".
func (c *NoticeContent) Buttons() []Button {
	slots := [3]struct {
		cfg       *NoticeJumpConfig
		text, uri string
	}{
		{c.JumpURIConfig, c.JumpText, c.JumpURI},
		{c.JumpURI2Config, c.JumpText2, c.JumpURI2},
		{c.JumpURI3Config, c.JumpText3, c.JumpURI3},
	}
	var out []Button
	for _, s := range slots {
		var cfg NoticeJumpConfig
		if s.cfg != nil {
			cfg = *s.cfg
		}
		link := contentFirst(strings.TrimSpace(cfg.WebURI), strings.TrimSpace(cfg.AllURI), strings.TrimSpace(s.uri))
		if link == "" {
			continue
		}
		label := contentFirst(strings.TrimSpace(cfg.Text), strings.TrimSpace(s.text), defaultButtonText)
		out = append(out, Button{Text: label, URL: link})
	}
	return out
}

// Text implements Content. It repeats rows and buttons so a sink that
// shows only text loses nothing.
func (c *NoticeContent) Text() string {
	lines := []string{contentHeader("notice", c.Title), c.Body}
	for _, m := range c.Modules {
		lines = append(lines, contentField(m.Title, m.Detail))
	}
	for _, b := range c.Buttons() {
		lines = append(lines, b.Text+": "+b.URL)
	}
	return contentLines(lines...)
}

// Images implements Content.
func (c *NoticeContent) Images() []Image { return nil }

// Card implements Content.
func (c *NoticeContent) Card() *Card {
	card := &Card{Title: c.Title, Description: c.Body, Buttons: c.Buttons()}
	if len(card.Buttons) > 0 {
		card.URL = card.Buttons[0].URL
	}
	if c.BizContent != nil {
		card.Cover = contentFirst(c.BizContent.Cover, c.BizContent.BackupCover)
	}
	for _, m := range c.Modules {
		if m.Title != "" || m.Detail != "" {
			card.Fields = append(card.Fields, CardField{Title: m.Title, Value: m.Detail})
		}
	}
	return card
}

// contentField renders a key/value row as one line.
func contentField(title, value string) string {
	switch {
	case title == "":
		return value
	case value == "":
		return title
	}
	return title + ": " + value
}

// AttachMsg is the uploader's note attached to a video or article push
// (usually prefixed "UP主赠言：").
type AttachMsg struct {
	ID      int64  `json:"id"`
	Content string `json:"content"`
}

func (a *AttachMsg) text() string {
	if a == nil {
		return ""
	}
	return strings.TrimSpace(a.Content)
}

// VideoContent is a video push (msg_type 11). Bilibili sometimes sends a
// degraded form with only rid, type (no underscore) and attach_msg; the
// metadata then has to be fetched (x/im/feed/infoweb). MarshalJSON writes
// whichever of the two forms the value is in.
type VideoContent struct {
	Title string `json:"title"`
	// Times is the duration in seconds.
	Times int    `json:"times"`
	Cover string `json:"cover"`
	// Rid is the aid.
	Rid int64 `json:"rid"`
	// TypeUnderscore is "type_" of the full form, Type is "type" of the
	// degraded form; neither is understood.
	TypeUnderscore int        `json:"type_"`
	Type           int        `json:"type,omitempty"`
	Desc           string     `json:"desc"`
	Bvid           string     `json:"bvid"`
	View           int64      `json:"view"`
	Danmaku        int64      `json:"danmaku"`
	PubDate        int64      `json:"pub_date"`
	AttachMsg      *AttachMsg `json:"attach_msg"`
}

// videoContentJSON has VideoContent's fields without its methods, so
// MarshalJSON can use the struct tags without recursing.
type videoContentJSON VideoContent

// MarshalJSON re-encodes the degraded form as {rid, type, attach_msg}, as
// Bilibili sends it, and the full form with every field, zero counts included.
func (c VideoContent) MarshalJSON() ([]byte, error) {
	if c.Type != 0 && c.TypeUnderscore == 0 && c.Title == "" && c.Times == 0 && c.Cover == "" &&
		c.Desc == "" && c.Bvid == "" && c.View == 0 && c.Danmaku == 0 && c.PubDate == 0 {
		return json.Marshal(degradedPushJSON{Rid: c.Rid, Type: c.Type, AttachMsg: c.AttachMsg})
	}
	return json.Marshal(videoContentJSON(c))
}

// degradedPushJSON is the metadata-less form of video and article pushes.
type degradedPushJSON struct {
	Rid       int64      `json:"rid"`
	Type      int        `json:"type"`
	AttachMsg *AttachMsg `json:"attach_msg"`
}

// Kind implements Content.
func (c *VideoContent) Kind() Kind { return KindVideo }

// Degraded reports whether the push came without its metadata (the
// rid/type/attach_msg form, or a deleted video).
func (c *VideoContent) Degraded() bool { return c.Title == "" && c.Bvid == "" && c.Cover == "" }

// Link is the video page, by bvid, else by aid; "" when neither is known.
func (c *VideoContent) Link() string { return contentVideoURL(c.Bvid, c.Rid) }

func (c *VideoContent) title() string {
	switch {
	case strings.TrimSpace(c.Title) != "":
		return strings.TrimSpace(c.Title)
	case c.Bvid != "":
		return c.Bvid
	case c.Rid > 0:
		return "av" + strconv.FormatInt(c.Rid, 10)
	}
	return ""
}

// Text implements Content: "[video] <title>", or "[video av…]" when the
// title is missing, then the uploader's note and the link.
func (c *VideoContent) Text() string {
	header := contentHeader("video", c.Title)
	if strings.TrimSpace(c.Title) == "" && c.title() != "" {
		header = "[video " + c.title() + "]"
	}
	return contentLines(header, c.AttachMsg.text(), c.Link())
}

// Images implements Content.
func (c *VideoContent) Images() []Image { return nil }

// Card implements Content. The uploader's note leads the description: in a
// DM it is the personal part, the video description is generic.
func (c *VideoContent) Card() *Card {
	desc := strings.TrimSpace(c.Desc)
	if desc == c.title() {
		// Uploaders often leave the description as the title.
		desc = ""
	}
	return &Card{Title: c.title(), Description: contentParagraphs(c.AttachMsg.text(), desc), URL: c.Link(), Cover: c.Cover}
}

// ArticleContent is an article push (msg_type 12), with the same degraded
// form as VideoContent.
type ArticleContent struct {
	// Rid is the cv id.
	Rid int64 `json:"rid"`
	// Title is "内容已失效" when the article is gone.
	Title      string     `json:"title"`
	Summary    string     `json:"summary"`
	Author     string     `json:"author"`
	View       int64      `json:"view"`
	Like       int64      `json:"like"`
	Reply      int64      `json:"reply"`
	TemplateID int        `json:"template_id"`
	ImageURLs  []string   `json:"image_urls"`
	AttachMsg  *AttachMsg `json:"attach_msg"`
	PubDate    int64      `json:"pub_date"`
	// Type only appears in the degraded form.
	Type int `json:"type,omitempty"`
}

// articleContentJSON has ArticleContent's fields without its methods.
type articleContentJSON ArticleContent

// MarshalJSON writes the degraded or the full form, like VideoContent's.
func (c ArticleContent) MarshalJSON() ([]byte, error) {
	if c.Type != 0 && c.Title == "" && c.Summary == "" && c.Author == "" && c.View == 0 && c.Like == 0 &&
		c.Reply == 0 && c.TemplateID == 0 && c.ImageURLs == nil && c.PubDate == 0 {
		return json.Marshal(degradedPushJSON{Rid: c.Rid, Type: c.Type, AttachMsg: c.AttachMsg})
	}
	return json.Marshal(articleContentJSON(c))
}

// Kind implements Content.
func (c *ArticleContent) Kind() Kind { return KindArticle }

// Degraded reports whether the push came without its metadata.
func (c *ArticleContent) Degraded() bool { return c.Title == "" && c.Summary == "" && c.Author == "" }

// Link is the article page; "" without a cv id.
func (c *ArticleContent) Link() string { return contentArticleURL(c.Rid) }

func (c *ArticleContent) title() string {
	switch {
	case strings.TrimSpace(c.Title) != "":
		return strings.TrimSpace(c.Title)
	case c.Rid > 0:
		return "cv" + strconv.FormatInt(c.Rid, 10)
	}
	return ""
}

// Text implements Content, like VideoContent.Text.
func (c *ArticleContent) Text() string {
	header := contentHeader("article", c.Title)
	if strings.TrimSpace(c.Title) == "" && c.title() != "" {
		header = "[article " + c.title() + "]"
	}
	return contentLines(header, c.AttachMsg.text(), c.Link())
}

// Images implements Content. The article's pictures are covers, in Card.
func (c *ArticleContent) Images() []Image { return nil }

// Card implements Content.
func (c *ArticleContent) Card() *Card {
	card := &Card{Title: c.title(), Description: contentParagraphs(c.AttachMsg.text(), strings.TrimSpace(c.Summary)),
		URL: c.Link()}
	for _, u := range c.ImageURLs {
		if u != "" {
			card.Cover = u
			break
		}
	}
	if c.Author != "" {
		card.Fields = []CardField{{Title: "作者", Value: c.Author}}
	}
	return card
}

// PictureContent is a picture card (msg_type 13): a banner that links
// somewhere. The picture is the card's cover, not a message image.
type PictureContent struct {
	PicURL  string `json:"pic_url"`
	JumpURL string `json:"jump_url"`
	// Title is what the session list shows.
	Title string `json:"title"`
}

// Kind implements Content.
func (c *PictureContent) Kind() Kind { return KindPicture }

// Text implements Content.
func (c *PictureContent) Text() string {
	return contentLines(contentHeader("picture", c.Title), c.JumpURL)
}

// Images implements Content.
func (c *PictureContent) Images() []Image { return nil }

// Card implements Content.
func (c *PictureContent) Card() *Card {
	return &Card{Title: c.Title, URL: c.JumpURL, Cover: c.PicURL}
}

// OtherShareContent is the "other" share card (msg_type 14), typically a
// live room. Unlike ShareContent, Source is a display label ("直播").
type OtherShareContent struct {
	Author string `json:"author"`
	Cover  string `json:"cover"`
	Desc   string `json:"desc"`
	Source string `json:"source"`
	Title  string `json:"title"`
	URL    string `json:"url"`
}

// Kind implements Content.
func (c *OtherShareContent) Kind() Kind { return KindShare }

// Text implements Content.
func (c *OtherShareContent) Text() string {
	return contentLines(contentHeader("share", contentFirst(c.Title, c.Desc)), c.URL)
}

// Images implements Content.
func (c *OtherShareContent) Images() []Image { return nil }

// Card implements Content.
func (c *OtherShareContent) Card() *Card {
	card := &Card{Title: contentFirst(c.Title, c.Author), Description: c.Desc, URL: c.URL, Cover: c.Cover}
	if c.Source != "" {
		card.Fields = append(card.Fields, CardField{Title: "来源", Value: c.Source})
	}
	if c.Author != "" {
		card.Fields = append(card.Fields, CardField{Title: "作者", Value: c.Author})
	}
	return card
}

// WorksContent is the push of an uploader's works sent after a follow
// (msg_type 16), right after the follow auto-reply text.
type WorksContent struct {
	MainTitle string `json:"main_title"`
	// ReplyContent repeats the auto-reply (it feeds the session-list
	// preview), so it is not rendered again.
	ReplyContent string         `json:"reply_content"`
	SubCards     []WorksSubCard `json:"sub_cards"`
}

// WorksSubCard is one work: Field1 the title, Field2 the date, Field3 and
// Field4 counters whose meaning Icon3/Icon4 give (1 views, 3 danmaku, 5 favourites).
type WorksSubCard struct {
	// CardID is the aid.
	CardID   int64  `json:"card_id"`
	CardType int    `json:"card_type"`
	JumpURL  string `json:"jump_url"`
	CoverURL string `json:"cover_url"`
	Field1   string `json:"field1"`
	Field2   string `json:"field2"`
	Field3   string `json:"field3"`
	Icon3    int    `json:"icon3"`
	Field4   string `json:"field4"`
	Icon4    int    `json:"icon4"`
}

// Link is the work's jump_url, else its video page.
func (s WorksSubCard) Link() string {
	if s.JumpURL != "" {
		return s.JumpURL
	}
	if s.CardType == 1 {
		return contentVideoURL("", s.CardID)
	}
	return ""
}

func (s WorksSubCard) stats() string {
	var parts []string
	if s.Field2 != "" {
		parts = append(parts, s.Field2)
	}
	for _, f := range [...]struct {
		value string
		icon  int
	}{{s.Field3, s.Icon3}, {s.Field4, s.Icon4}} {
		if f.value == "" {
			continue
		}
		if label := worksIconLabel(f.icon); label != "" {
			parts = append(parts, label+" "+f.value)
		} else {
			parts = append(parts, f.value)
		}
	}
	return strings.Join(parts, " · ")
}

func worksIconLabel(icon int) string {
	switch icon {
	case 1:
		return "播放"
	case 3:
		return "弹幕"
	case 5:
		return "收藏"
	}
	return ""
}

// Kind implements Content.
func (c *WorksContent) Kind() Kind { return KindWorks }

// Text implements Content: the heading, then one "title url" line per work.
func (c *WorksContent) Text() string {
	lines := []string{contentHeader("works", c.MainTitle)}
	for _, s := range c.SubCards {
		lines = append(lines, strings.TrimSpace(strings.TrimSpace(s.Field1)+" "+s.Link()))
	}
	return contentLines(lines...)
}

// Images implements Content.
func (c *WorksContent) Images() []Image { return nil }

// Card implements Content: one field per work; the first work's cover
// stands for the card.
func (c *WorksContent) Card() *Card {
	card := &Card{Title: c.MainTitle}
	for _, s := range c.SubCards {
		if card.Cover == "" {
			card.Cover = s.CoverURL
		}
		title := contentFirst(strings.TrimSpace(s.Field1), s.Link())
		value := contentLines(s.stats(), s.Link())
		if title == "" && value == "" {
			continue
		}
		card.Fields = append(card.Fields, CardField{Title: title, Value: value})
	}
	return card
}

// contentParagraphs joins the non-empty parts with a blank line.
func contentParagraphs(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "\n\n")
}
