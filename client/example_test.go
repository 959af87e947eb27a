package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/keyq/keyq/client"
	"github.com/keyq/keyq/tasks"
	"github.com/keyq/keyq/webhook"
)

// fakeAPI answers like keyq's API for one job and one batch.
func fakeAPI() *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		// A real API holds the request until the job is final (?wait=).
		fmt.Fprintf(w, `{"id":%q,"type":"analyze-character","status":"succeeded","attempts":1,"max_attempts":4,"result":{"model":"gemini-2.5-flash"}}`, r.PathValue("id"))
	})
	mux.HandleFunc("DELETE /api/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"id":%q,"status":"cancelled","error":{"class":"cancelled","message":"the job was cancelled"}}`, r.PathValue("id"))
	})
	mux.HandleFunc("GET /api/jobs/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 2000\n\nid: 1\nevent: running\ndata: {\"id\":\"j1\",\"status\":\"running\",\"attempts\":1}\n\n")
		fmt.Fprint(w, ": waiting\n\nid: 2\nevent: succeeded\ndata: {\"id\":\"j1\",\"status\":\"succeeded\",\"attempts\":1}\n\n")
	})
	mux.HandleFunc("POST /api/batches", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"id":"b1","total":2,"status_url":"/api/batches/b1"}`)
	})
	mux.HandleFunc("GET /api/batches/{id}/results", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"custom_id":"holmes","id":"j1","status":"succeeded"}`+"\n"+`{"custom_id":"watson","id":"j2","status":"failed","error":{"class":"blocked","message":"SAFETY"}}`+"\n")
	})
	return httptest.NewServer(mux)
}

func ExampleClient_Wait() {
	api := fakeAPI()
	defer api.Close()
	c, _ := client.New(api.URL, client.Options{})
	j, err := c.Wait(context.Background(), "5f0c", nil)
	fmt.Println(j.Status, err)
	// Output: succeeded <nil>
}

func ExampleClient_Follow() {
	api := fakeAPI()
	defer api.Close()
	c, _ := client.New(api.URL, client.Options{})
	j, err := c.Follow(context.Background(), "j1", func(j tasks.Job) { fmt.Println("now", j.Status) })
	fmt.Println(j.Status, err)
	// Output:
	// now running
	// now succeeded
	// succeeded <nil>
}

func ExampleClient_Cancel() {
	api := fakeAPI()
	defer api.Close()
	c, _ := client.New(api.URL, client.Options{})
	j, _ := c.Cancel(context.Background(), "5f0c")
	fmt.Println(j.Status, j.Error.Class)
	// Output: cancelled cancelled
}

func ExampleClient_SubmitBatch() {
	api := fakeAPI()
	defer api.Close()
	c, _ := client.New(api.URL, client.Options{})
	ctx := context.Background()
	acc, _ := c.SubmitBatch(ctx, []tasks.BatchItem{
		{CustomID: "holmes", AnalyzeCharacter: tasks.AnalyzeCharacter{Name: "Sherlock Holmes"}},
		{CustomID: "watson", AnalyzeCharacter: tasks.AnalyzeCharacter{Name: "John Watson"}},
	}, client.BatchOptions{})
	fmt.Println(acc.ID, acc.Total)
	_ = c.BatchResults(ctx, acc.ID, func(r tasks.BatchResult) error {
		fmt.Println(r.CustomID, r.Status)
		return nil
	})
	// Output:
	// b1 2
	// holmes succeeded
	// watson failed
}

// A receiver of keyq's webhooks checks each one before trusting it.
func ExampleVerifyWebhook() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // WEBHOOK_SECRET
	body := []byte(`{"id":"5f0c","type":"analyze-character","status":"succeeded","attempts":1,"max_attempts":4}`)
	h := http.Header{}
	ss, _ := webhook.ParseSecrets(secret)
	webhook.Sign(h, ss, "msg_5f0c", time.Now(), body) // what keyq sends

	j, err := client.VerifyWebhook(secret, h, body)
	fmt.Println(j.ID, j.Status, err)
	_, err = client.VerifyWebhook(secret, h, []byte(`{"id":"5f0c","status":"failed"}`))
	fmt.Println(err)
	// Output:
	// 5f0c succeeded <nil>
	// webhook: no signature matches
}
