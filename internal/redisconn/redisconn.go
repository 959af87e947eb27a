// Package redisconn opens the Redis that keyq's commands are pointed at by
// REDIS_URL: redis://, rediss:// (TLS) or redis-sentinel://. No error it
// returns ever holds the URL, which may carry a password.
package redisconn

import (
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is the Redis keyq uses when REDIS_URL is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// Check reports a URL Open cannot use, without quoting it.
func Check(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "redis-sentinel") || u.Host == "" {
		return errors.New("must look like redis://[:password@]host:port/db, rediss://... for TLS, " +
			"or redis-sentinel://[:password@]host:port[,host:port...]/db?master=name for Redis Sentinel")
	}
	if u.Scheme == "redis-sentinel" {
		_, err = parseSentinelURL(rawURL)
		return err
	}
	if _, err := redis.ParseURL(rawURL); err != nil {
		return errors.New(redisURLProblem(err))
	}
	return nil
}

// Open connects to rawURL (see Check). The timeouts are
// short so that a dead Redis gives quick errors rather than hung requests;
// go-redis reconnects by itself when Redis is back. A redis-sentinel:// URL
// gives a failover client: it asks the sentinels for the master and follows
// it when they promote a replica. That client is a *redis.Client too.
func Open(rawURL string) (*redis.Client, error) {
	if strings.HasPrefix(rawURL, "redis-sentinel://") {
		opt, err := parseSentinelURL(rawURL)
		if err != nil {
			return nil, err
		}
		opt.DialTimeout = 2 * time.Second
		opt.ReadTimeout = 3 * time.Second
		opt.WriteTimeout = 3 * time.Second
		opt.Protocol = 2 // as below
		return redis.NewFailoverClient(opt), nil
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, errors.New(redisURLProblem(err))
	}
	if opt.TLSConfig != nil {
		opt.TLSConfig.MinVersion = tls.VersionTLS12
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 3 * time.Second
	opt.WriteTimeout = 3 * time.Second
	// RESP2: keyq uses no push notifications, and with RESP3 go-redis
	// checks every connection for pending ones before each command (about
	// 6% of the CPU of a job in the bench's profile).
	opt.Protocol = 2
	return redis.NewClient(opt), nil
}

// defaultSentinelPort is Redis Sentinel's own port.
const defaultSentinelPort = "26379"

// parseSentinelURL reads
//
//	redis-sentinel://[:password@]host[:port][,host[:port]...][/db]?master=name[&sentinel_password=...]
//
// asynq's form (ParseRedisURI) plus a database. The password is the one of
// Redis itself (master and replicas); sentinels that require one of their
// own take it from sentinel_password. Errors never hold the URL.
func parseSentinelURL(rawURL string) (*redis.FailoverOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("it is not a valid URL")
	}
	q := u.Query()
	opt := &redis.FailoverOptions{MasterName: q.Get("master"), SentinelPassword: q.Get("sentinel_password")}
	if opt.MasterName == "" {
		return nil, errors.New("a redis-sentinel:// URL needs ?master=<name of the master the sentinels monitor>")
	}
	for k := range q {
		if k != "master" && k != "sentinel_password" {
			return nil, errors.New("a redis-sentinel:// URL takes only the query parameters master and sentinel_password")
		}
	}
	if u.User != nil {
		opt.Username = u.User.Username()
		opt.Password, _ = u.User.Password()
	}
	for h := range strings.SplitSeq(u.Host, ",") {
		if h == "" {
			return nil, errors.New("a redis-sentinel:// URL needs host:port of one or more sentinels, separated by commas")
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, defaultSentinelPort)
		}
		opt.SentinelAddrs = append(opt.SentinelAddrs, h)
	}
	if len(opt.SentinelAddrs) == 0 {
		return nil, errors.New("a redis-sentinel:// URL needs host:port of one or more sentinels, separated by commas")
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if opt.DB, err = strconv.Atoi(db); err != nil || opt.DB < 0 {
			return nil, errors.New("the path of a redis-sentinel:// URL is the database number, like /0")
		}
	}
	return opt, nil
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

// Describe names the server(s) of rawURL for operators: host:port (or the
// sentinels and master), never user info or query.
func Describe(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "REDIS_URL"
	}
	if u.Scheme == "redis-sentinel" {
		return "sentinels " + u.Host + " (master " + u.Query().Get("master") + ")"
	}
	return u.Host
}
