package agents

// SetDocumentsJoined sets the hook Fetch calls once it waits on a shared
// request.
func SetDocumentsJoined(d *Documents, f func()) { d.joined = f }
