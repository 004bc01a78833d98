// Package throttle counts events per key in fixed windows, so that the
// gateway can answer 429 after too many login failures for one account or
// one client address, or too many signups from one address, until the
// window ends.
//
// A window starts at a key's first event and lasts the duration given with
// that event; later events only add to its count. Fixed windows are coarse (a
// client can spend one window's budget at its end and the next at the next
// one's start), which is good enough to slow down password guessing and
// costs one Redis key per throttled key.
//
// [Redis] shares the counts between every replica using the same Redis and
// prefix. [Local] counts in one process, in bounded memory. [WithFallback]
// uses Redis and falls back to a Local while Redis is away: throttling then
// holds per replica instead of across them, which is weaker but better than
// failing logins or not throttling at all.
//
// Callers decide what a key is (for instance "login:acct:"+email); the
// package only counts.
package throttle
