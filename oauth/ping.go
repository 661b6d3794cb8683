package oauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/writ-dev/writ/approvals"
)

// OnEvent tells ping-mode clients that the user decided (CIBA Core 1.0
// section 10.2): on approved, denied and expired events for a request it
// opened, it POSTs {"auth_req_id": ...} to the client's notification
// endpoint with the client_notification_token as bearer. Chain it from
// approvals.Options.OnEvent; it returns at once and delivers in the
// background.
func (c *CIBA) OnEvent(e approvals.Event) {
	switch e.Kind {
	case approvals.EventApproved, approvals.EventDenied, approvals.EventExpired:
	default:
		return
	}
	c.mu.Lock()
	ar := c.requests[e.ID]
	var token, endpoint, clientID string
	if ar != nil && !ar.pinged && ar.pingEndpoint != "" {
		token, endpoint, clientID = ar.notificationToken, ar.pingEndpoint, ar.client
		ar.pinged = token != ""
	}
	c.mu.Unlock()
	if token == "" {
		return
	}
	if c.pingCtx.Err() != nil {
		return
	}
	c.pings.Go(func() {
		if err := c.ping(c.pingCtx, endpoint, token, e.ID); err != nil {
			c.log.Warn("ciba: ping notification failed", "client_id", clientID, "auth_req_id_sha256", digest(e.ID), "error", err)
		}
	})
}

func (c *CIBA) ping(ctx context.Context, endpoint, token, id string) error {
	body, err := json.Marshal(map[string]string{"auth_req_id": id})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPing, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPing, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPing, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%w: status %d", ErrPing, resp.StatusCode)
	}
	return nil
}

func randomHandle() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
