package store

import (
	"context"
	"errors"
	"time"
)

// Op names a Store method for an Observer.
type Op uint8

// The operations Observed times, one per Store method that may wait for
// the database.
const (
	OpCreateDevice Op = iota
	OpDevice
	OpDeviceStatus
	OpCountDevicesFromSource
	OpTouchDevice
	OpSetPower
	OpRetireDevice
	OpExpiredDevices
	OpDeleteDevice
	OpChannelByToken
	OpChannel
	OpChannelByApp
	OpCountChannels
	OpCreateChannel
	OpSetChannelToken
	OpSetBindings
	OpDeleteChannel
	OpEnqueue
	OpPending
	OpAck
	OpDeleteExpired
	OpQueueLength
	OpMessageStatus
	OpCancelMessage
	OpRequeue
	// NumOps counts the operations, for an Observer's table.
	NumOps
)

var opNames = [NumOps]string{
	OpCreateDevice:           "create_device",
	OpDevice:                 "device",
	OpDeviceStatus:           "device_status",
	OpCountDevicesFromSource: "count_devices_from_source",
	OpTouchDevice:            "touch_device",
	OpSetPower:               "set_power",
	OpRetireDevice:           "retire_device",
	OpExpiredDevices:         "expired_devices",
	OpDeleteDevice:           "delete_device",
	OpChannelByToken:         "channel_by_token",
	OpChannel:                "channel",
	OpChannelByApp:           "channel_by_app",
	OpCountChannels:          "count_channels",
	OpCreateChannel:          "create_channel",
	OpSetChannelToken:        "set_channel_token",
	OpSetBindings:            "set_bindings",
	OpDeleteChannel:          "delete_channel",
	OpEnqueue:                "enqueue",
	OpPending:                "pending",
	OpAck:                    "ack",
	OpDeleteExpired:          "delete_expired",
	OpQueueLength:            "queue_length",
	OpMessageStatus:          "message_status",
	OpCancelMessage:          "cancel_message",
	OpRequeue:                "requeue",
}

// String is the operation's name as a metric label has it.
func (o Op) String() string {
	if o < NumOps {
		return opNames[o]
	}
	return "unknown"
}

// Observer is told how each store call went. It runs on the caller's
// path, so it must be quick (a metrics observation).
type Observer interface {
	ObserveStore(op Op, took time.Duration, err error)
}

// Failed reports whether err is a failure of the store, as opposed to
// an answer about the data (not found, already there, queue full, number
// out of range) or the caller giving up.
func Failed(err error) bool {
	return err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrExists) && !errors.Is(err, ErrQueueFull) &&
		!errors.Is(err, ErrSeqRange) && !errors.Is(err, context.Canceled)
}

// Observed is a Store that tells an Observer how long each call took and
// how it ended. It wraps either backend, so the service reports the same
// figures for both, and neither backend carries metrics code of its own.
// Calls that do not wait (AckLater, TouchLater, OnCommitted, Close) pass
// through unobserved.
type Observed struct {
	Store
	obs Observer
}

// Observe wraps s so that obs is told of every call.
func Observe(s Store, obs Observer) *Observed { return &Observed{Store: s, obs: obs} }

// Unwrap returns the store Observed wraps.
func (o *Observed) Unwrap() Store { return o.Store }

func (o *Observed) done(op Op, began time.Time, err error) {
	o.obs.ObserveStore(op, time.Since(began), err)
}

func (o *Observed) CreateDevice(ctx context.Context, d Device) error {
	began := time.Now()
	err := o.Store.CreateDevice(ctx, d)
	o.done(OpCreateDevice, began, err)
	return err
}

func (o *Observed) Device(ctx context.Context, id string) (Device, error) {
	began := time.Now()
	v, err := o.Store.Device(ctx, id)
	o.done(OpDevice, began, err)
	return v, err
}

func (o *Observed) DeviceStatus(ctx context.Context, id string) (Device, error) {
	began := time.Now()
	v, err := o.Store.DeviceStatus(ctx, id)
	o.done(OpDeviceStatus, began, err)
	return v, err
}

func (o *Observed) CountDevicesFromSource(ctx context.Context, source string) (int, error) {
	began := time.Now()
	v, err := o.Store.CountDevicesFromSource(ctx, source)
	o.done(OpCountDevicesFromSource, began, err)
	return v, err
}

func (o *Observed) TouchDevice(ctx context.Context, id string, seen time.Time) error {
	began := time.Now()
	err := o.Store.TouchDevice(ctx, id, seen)
	o.done(OpTouchDevice, began, err)
	return err
}

func (o *Observed) SetPower(ctx context.Context, id, power string) error {
	began := time.Now()
	err := o.Store.SetPower(ctx, id, power)
	o.done(OpSetPower, began, err)
	return err
}

func (o *Observed) RetireDevice(ctx context.Context, id string, at time.Time) error {
	began := time.Now()
	err := o.Store.RetireDevice(ctx, id, at)
	o.done(OpRetireDevice, began, err)
	return err
}

func (o *Observed) ExpiredDevices(ctx context.Context, before time.Time, limit int) ([]string, error) {
	began := time.Now()
	v, err := o.Store.ExpiredDevices(ctx, before, limit)
	o.done(OpExpiredDevices, began, err)
	return v, err
}

func (o *Observed) DeleteDevice(ctx context.Context, id string, seenBefore time.Time) (bool, error) {
	began := time.Now()
	v, err := o.Store.DeleteDevice(ctx, id, seenBefore)
	o.done(OpDeleteDevice, began, err)
	return v, err
}

func (o *Observed) ChannelByToken(ctx context.Context, token string) (Channel, error) {
	began := time.Now()
	v, err := o.Store.ChannelByToken(ctx, token)
	o.done(OpChannelByToken, began, err)
	return v, err
}

func (o *Observed) Channel(ctx context.Context, id string) (Channel, error) {
	began := time.Now()
	v, err := o.Store.Channel(ctx, id)
	o.done(OpChannel, began, err)
	return v, err
}

func (o *Observed) ChannelByApp(ctx context.Context, deviceID, app string) (Channel, error) {
	began := time.Now()
	v, err := o.Store.ChannelByApp(ctx, deviceID, app)
	o.done(OpChannelByApp, began, err)
	return v, err
}

func (o *Observed) CountChannels(ctx context.Context, deviceID string) (int, error) {
	began := time.Now()
	v, err := o.Store.CountChannels(ctx, deviceID)
	o.done(OpCountChannels, began, err)
	return v, err
}

func (o *Observed) CreateChannel(ctx context.Context, c Channel) error {
	began := time.Now()
	err := o.Store.CreateChannel(ctx, c)
	o.done(OpCreateChannel, began, err)
	return err
}

func (o *Observed) SetChannelToken(ctx context.Context, id, token string) error {
	began := time.Now()
	err := o.Store.SetChannelToken(ctx, id, token)
	o.done(OpSetChannelToken, began, err)
	return err
}

func (o *Observed) SetBindings(ctx context.Context, id string, toast, tile bool, domains, pinned []string) error {
	began := time.Now()
	err := o.Store.SetBindings(ctx, id, toast, tile, domains, pinned)
	o.done(OpSetBindings, began, err)
	return err
}

func (o *Observed) DeleteChannel(ctx context.Context, id string) error {
	began := time.Now()
	err := o.Store.DeleteChannel(ctx, id)
	o.done(OpDeleteChannel, began, err)
	return err
}

func (o *Observed) Enqueue(ctx context.Context, q Queued, opts EnqueueOptions) (Queued, error) {
	began := time.Now()
	v, err := o.Store.Enqueue(ctx, q, opts)
	o.done(OpEnqueue, began, err)
	return v, err
}

func (o *Observed) Pending(ctx context.Context, deviceID string, after uint64) ([]Queued, error) {
	began := time.Now()
	v, err := o.Store.Pending(ctx, deviceID, after)
	o.done(OpPending, began, err)
	return v, err
}

func (o *Observed) Ack(ctx context.Context, deviceID string, seq uint64) error {
	began := time.Now()
	err := o.Store.Ack(ctx, deviceID, seq)
	o.done(OpAck, began, err)
	return err
}

func (o *Observed) DeleteExpired(ctx context.Context, limit int) (int, error) {
	began := time.Now()
	v, err := o.Store.DeleteExpired(ctx, limit)
	o.done(OpDeleteExpired, began, err)
	return v, err
}

func (o *Observed) QueueLength(ctx context.Context) (int64, error) {
	began := time.Now()
	v, err := o.Store.QueueLength(ctx)
	o.done(OpQueueLength, began, err)
	return v, err
}

func (o *Observed) MessageStatus(ctx context.Context, deviceID, channelID, messageID string) (MessageStatus, error) {
	began := time.Now()
	v, err := o.Store.MessageStatus(ctx, deviceID, channelID, messageID)
	o.done(OpMessageStatus, began, err)
	return v, err
}

func (o *Observed) CancelMessage(ctx context.Context, deviceID, channelID, messageID string) error {
	began := time.Now()
	err := o.Store.CancelMessage(ctx, deviceID, channelID, messageID)
	o.done(OpCancelMessage, began, err)
	return err
}

func (o *Observed) Requeue(ctx context.Context, deviceID string, seq uint64) (Queued, error) {
	began := time.Now()
	v, err := o.Store.Requeue(ctx, deviceID, seq)
	o.done(OpRequeue, began, err)
	return v, err
}

var _ Store = (*Observed)(nil)
