package gate_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewind/rewind/backup/gate"
)

func benchGet(b *testing.B, url string) {
	client := newClient(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
}

// BenchmarkDirect and BenchmarkProxy compare a small GET straight to the app and through the gate.
func BenchmarkDirect(b *testing.B) {
	a := newApp(b)
	benchGet(b, a.srv.URL+"/hello")
}

func BenchmarkProxy(b *testing.B) {
	a := newApp(b)
	_, base := startGate(b, gate.Config{Upstream: a.srv.URL})
	benchGet(b, base+"/hello")
}

// BenchmarkHoldRelease measures a pause (Hold, drain, Release at once) while N clients keep requests in
// flight against an app that takes about a millisecond per request.
func BenchmarkHoldRelease(b *testing.B) {
	for _, n := range []int{0, 8, 64} {
		b.Run(fmt.Sprintf("inflight=%d", n), func(b *testing.B) {
			app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(time.Millisecond)
				io.WriteString(w, "ok")
			}))
			defer app.Close()
			g, base := startGate(b, gate.Config{Upstream: app.URL})
			client := newClient(b)
			var stop atomic.Bool
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					for !stop.Load() {
						res, err := client.Get(base)
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
					}
				})
			}
			time.Sleep(20 * time.Millisecond)
			var total, worst, drain time.Duration
			b.ResetTimer()
			for range b.N {
				h, err := g.Hold(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				d, err := h.Release()
				if err != nil {
					b.Fatal(err)
				}
				total += d
				worst = max(worst, d)
				drain += h.Drain()
				b.StopTimer()
				time.Sleep(2 * time.Millisecond) // let traffic flow between pauses
				b.StartTimer()
			}
			b.StopTimer()
			stop.Store(true)
			wg.Wait()
			b.ReportMetric(float64(total.Microseconds())/float64(b.N), "pause-µs/op")
			b.ReportMetric(float64(drain.Microseconds())/float64(b.N), "drain-µs/op")
			b.ReportMetric(float64(worst.Microseconds()), "worst-pause-µs")
		})
	}
}

// BenchmarkReleaseQueue measures how long N requests that waited for a hold take to be served once it is
// released (the ordered dispatch included).
func BenchmarkReleaseQueue(b *testing.B) {
	for _, n := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("waiting=%d", n), func(b *testing.B) {
			a := newApp(b)
			g, base := startGate(b, gate.Config{Upstream: a.srv.URL})
			client := newClient(b)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				h := hold(b, g)
				var wg sync.WaitGroup
				for range n {
					wg.Go(func() {
						res, err := client.Get(base + "/hello")
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
					})
				}
				waitFor(b, "requests to wait", func() bool { return g.Stats().Waiting == n })
				b.StartTimer()
				h.Release()
				wg.Wait()
			}
		})
	}
}
