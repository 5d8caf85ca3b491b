// Package telegramtest is a stateful fake Telegram Bot API server for
// tests. It speaks the real wire format: every call is
// POST /bot<token>/<method> with a multipart/form-data body (an empty body
// for calls without parameters), nested objects arrive as JSON strings,
// uploads as form files, and every answer is {"ok":true,"result":…} or
// {"ok":false,"error_code":…,"description":…,"parameters":{…}}.
//
// It keeps chats (forum or not), forum topics (created, closed, deleted),
// the messages the bot sent or edited, reactions, files and a queue of
// updates served by getUpdates with Telegram's offset semantics. Faults can
// be injected for the next calls of a method.
package telegramtest
