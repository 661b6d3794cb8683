package main

import (
	"fmt"
	"time"
)

// AgentsConfig is the agent registry's behaviour on the Check path.
type AgentsConfig struct {
	// Unknown says what happens to an agent the registry does not hold:
	// "allow" (default) leaves it to policy, "deny" refuses it with 403
	// before policy runs.
	Unknown string `yaml:"unknown"`
	// Refresh is how often a replica reads status changes made elsewhere
	// (writ agents suspend, another replica). Default 1s.
	Refresh time.Duration `yaml:"refresh"`
}

func (c AgentsConfig) validate() error {
	switch c.Unknown {
	case "", "allow", "deny":
	default:
		return fmt.Errorf("config: agents.unknown: %q is not allow or deny", c.Unknown)
	}
	if c.Refresh < 0 || c.Refresh > time.Minute {
		return fmt.Errorf("config: agents.refresh: %s is outside [0, 1m]", c.Refresh)
	}
	return nil
}
