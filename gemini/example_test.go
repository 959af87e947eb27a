package gemini_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/gemini/geminifake"
)

func Example() {
	up := geminifake.New(geminifake.Options{})
	up.Script("AIza-example", geminifake.FixtureReply("503_overloaded"))
	up.Always("AIza-example", geminifake.FixtureReply("429_per_day"))
	srv := httptest.NewServer(up)
	defer srv.Close()

	c, err := gemini.New(gemini.Options{BaseURL: srv.URL, Model: "gemini-2.5-flash"})
	if err != nil {
		panic(err)
	}
	req := &gemini.Request{Text: []string{"Summarise Sherlock Holmes in one line."}}
	for range 2 {
		_, err = c.Generate(context.Background(), "AIza-example", req)
		var e *gemini.Error
		if errors.As(err, &e) {
			fmt.Println(e)
			fmt.Println(e.Class, e.RetryAfter, e.PerDay(), e.Retryable(), e.KeyFault())
		}
	}
	// Output:
	// gemini: unavailable (503 UNAVAILABLE): The model is overloaded. Please try again later.
	// unavailable 0s false true false
	// gemini: rate_limited (429 RESOURCE_EXHAUSTED): You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. * Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 20, model: gemini-2.5-flash-lite Please retry in 37.8s.
	// rate_limited 37s true true false
}
