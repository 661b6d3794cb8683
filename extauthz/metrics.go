package extauthz

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writ-dev/writ/audit"
)

// Metrics are the Check path's Prometheus metrics.
type Metrics struct {
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

// NewMetrics registers the Check path's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_decisions_total",
			Help: "Check decisions by outcome (allow, deny, unauthenticated, bad_request, error) and cause (a fixed set).",
		}, []string{"outcome", "cause"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "writ_check_duration_seconds",
			Help:    "Time to decide one Check, by ext_authz protocol (grpc, http).",
			Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1},
		}, []string{"protocol"}),
	}
	reg.MustRegister(m.decisions, m.latency)
	return m
}

// observe counts the decision and writes its one log line. The line carries
// who, what and why — never a token or a credential.
func (s *Server) observe(ctx context.Context, rec *audit.Record, v verdict, start time.Time) {
	if m := s.deps.Metrics; m != nil {
		m.decisions.WithLabelValues(v.outcome, v.cause).Inc()
		m.latency.WithLabelValues(rec.Request.Protocol).Observe(time.Since(start).Seconds())
	}
	if !s.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("decision_id", rec.DecisionID),
		slog.String("outcome", rec.Outcome),
		slog.Int("status", rec.Status),
		slog.String("reason", rec.Reason),
		slog.String("protocol", rec.Request.Protocol),
		slog.String("method", rec.Request.Method),
		slog.String("host", rec.Request.Host),
		slog.String("path", rec.Request.Path),
		slog.Int64("latency_us", rec.LatencyMicros),
	}
	if rec.User != "" || rec.Agent != "" {
		attrs = append(attrs, slog.String("user", rec.User), slog.String("agent", rec.Agent))
	}
	if rec.Tenant != "" {
		attrs = append(attrs, slog.String("tenant", rec.Tenant))
	}
	if rec.Request.MCPMethod != "" {
		attrs = append(attrs, slog.String("mcp_method", rec.Request.MCPMethod), slog.String("mcp_name", rec.Request.MCPName))
	}
	if rec.Request.Resource != "" {
		attrs = append(attrs, slog.String("resource", rec.Request.Resource))
	}
	if rec.PolicyRevision != "" {
		attrs = append(attrs, slog.String("policy_revision", rec.PolicyRevision))
	}
	if rec.Token != nil {
		attrs = append(attrs, slog.String("token_jti", rec.Token.JTI), slog.Bool("token_reused", rec.Token.Reused))
	}
	if rec.Dev {
		attrs = append(attrs, slog.Bool("dev", true))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "decision", attrs...)
}
