package tenancytest

import "go.uber.org/goleak"

// FasthttpLeaks are the goroutines of fasthttp (under Fiber) that outlive
// a stopped server by design, for goleak.VerifyTestMain.
var FasthttpLeaks = []goleak.Option{
	// fasthttp's clock for Date headers runs for the life of the process.
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	// A stopped server's idle-worker sweeper notices the stop only when its
	// 10 s sleep ends; it exits then, on its own.
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
}
