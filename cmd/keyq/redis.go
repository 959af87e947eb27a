package main

import (
	"crypto/tls"
	"errors"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// openRedis connects to REDIS_URL (already validated). The timeouts are
// short so that a dead Redis gives quick errors rather than hung requests;
// go-redis reconnects by itself when Redis is back.
func openRedis(rawURL string) (*redis.Client, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, configError{errors.New("REDIS_URL cannot be used: " + redisURLProblem(err))}
	}
	if opt.TLSConfig != nil {
		opt.TLSConfig.MinVersion = tls.VersionTLS12
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 3 * time.Second
	opt.WriteTimeout = 3 * time.Second
	return redis.NewClient(opt), nil
}

// redisURLProblem keeps go-redis's reason but not the URL, which may hold a
// password.
func redisURLProblem(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return "it is not a valid URL"
	}
	return err.Error()
}
