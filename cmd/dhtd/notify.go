package main

import (
	"context"
	"fmt"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// notifyLoop tells the service manager READY=1 once the node has joined and
// its successor answers, then pings the watchdog at half its interval until
// ctx ends, each time only if the store answers a read and makes a durable
// commit within admin.probe_timeout: a node whose store is stuck stops
// pinging, and the service manager restarts it. Without NOTIFY_SOCKET every
// notification is a no-op.
func (d *daemon) notifyLoop(ctx context.Context) {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for !d.node.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
	status := fmt.Sprintf("STATUS=joined as %s at %s", d.node.Self().ID.Short(), d.node.Self().Addr)
	if _, err := sd.SdNotify(false, sd.SdNotifyReady+"\n"+status); err != nil {
		d.log.Warn("sd_notify failed", "error", err)
	}
	d.log.Info("node ready")
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.probeStore(ctx); err != nil {
				d.log.Warn("watchdog ping withheld: store check failed", "error", err)
				continue
			}
			if _, err := sd.SdNotify(false, sd.SdNotifyWatchdog); err != nil {
				d.log.Warn("watchdog ping failed", "error", err)
			}
		}
	}
}

// notifyStopping tells the service manager the node is leaving.
func notifyStopping() {
	_, _ = sd.SdNotify(false, sd.SdNotifyStopping)
}
