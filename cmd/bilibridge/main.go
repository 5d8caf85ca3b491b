package main

import (
	_ "github.com/bwmarrin/discordgo"
	_ "github.com/go-telegram/bot"
	_ "github.com/google/uuid"
	_ "github.com/kelseyhightower/envconfig"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "golang.org/x/time/rate"
)

func main() {}
