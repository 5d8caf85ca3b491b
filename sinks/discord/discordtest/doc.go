// Package discordtest is a stateful fake of the parts of Discord's REST API
// (v9) and gateway that the Discord sink uses: channels and threads (text
// and forum; renamed and archived with PATCH, every change recorded, an
// archived thread changed only by unarchiving it, renames optionally
// limited as Discord limits them), channel webhooks and their messages,
// bot messages, reactions, guild members, 429 and error injection, and a websocket
// gateway that says hello, records identify, sends READY, answers
// heartbeats and dispatches MESSAGE_CREATE.
//
// Tests reach it through Client, whose Transport sends every request,
// whatever its host, to the fake: nothing goes to the network.
package discordtest
