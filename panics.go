package hasql

import "fmt"

// userPanic is hasql's one panic policy, applied to every function of the
// application's that hasql calls: callbacks, the session callback, recovery
// functions, the failover callback and the event receiver. A panic is
// recovered where the function is called and becomes the error returned
// here, wrapping ErrCallbackPanic and naming the function and the panic's
// value; the call the function served fails with it, no other call does, and
// the process lives. Nothing is dropped unseen: every panic is counted in
// Stats.CallbackPanics (the event receiver serves no call, so its panics are
// seen only there), and later events are still delivered.
//
// It must be called from the deferred function that recovered p.
func (c *Connector) userPanic(what string, p any) error {
	if c != nil {
		c.callbackPanics.Add(1)
	}
	return newError(ErrCallbackPanic, fmt.Sprintf("%s panicked: %v", what, p), nil)
}
