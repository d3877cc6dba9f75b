package notify_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/mandated/mandated/notify"
	"github.com/mandated/mandated/notify/notifytest"
)

func TestRouterSendsByChannel(t *testing.T) {
	mail := notifytest.StartSMTP(t)
	sms := notifytest.StartWebhook(t)
	r := notify.Router{
		notify.Email: notifytest.SMTPNotifier(t, mail),
		notify.SMS:   notifytest.WebhookNotifier(t, sms),
	}
	ctx := context.Background()
	if err := r.Send(ctx, frenchCode); err != nil {
		t.Fatal(err)
	}
	if err := r.Send(ctx, smsCode); err != nil {
		t.Fatal(err)
	}
	if got := mail.WaitFor(t, "camille@example.org"); !strings.Contains(got.Text, "482913") {
		t.Errorf("email text = %q", got.Text)
	}
	if got := sms.WaitFor(t, smsCode.To); got.Payload.Text != smsCode.Text {
		t.Errorf("sms text = %q", got.Payload.Text)
	}
	if len(mail.Messages()) != 1 || len(sms.Calls()) != 1 {
		t.Errorf("%d emails, %d SMS; want one each", len(mail.Messages()), len(sms.Calls()))
	}

	for _, ch := range []notify.Channel{"pigeon", ""} {
		if err := r.Send(ctx, notify.Message{Channel: ch, To: "x", Text: "x"}); !errors.Is(err, notify.ErrNoChannel) {
			t.Errorf("channel %q: err = %v, want ErrNoChannel", ch, err)
		}
	}
	emailOnly := notify.Router{notify.Email: notifytest.SMTPNotifier(t, mail)}
	if err := emailOnly.Send(ctx, smsCode); !errors.Is(err, notify.ErrNoChannel) {
		t.Errorf("err = %v, want ErrNoChannel", err)
	}
	d := r.Describe()
	if !strings.HasPrefix(d[notify.Email], "SMTP 127.0.0.1:") || !strings.HasPrefix(d[notify.SMS], "SMS webhook http://127.0.0.1:") {
		t.Errorf("Describe = %v", d)
	}
	if strings.Contains(d[notify.SMS], sms.Secret()) {
		t.Error("Describe shows the secret")
	}
}

func TestLogNotifierPrintsAndSaysNotDelivered(t *testing.T) {
	var buf bytes.Buffer
	n := notify.NewLog(slog.New(slog.NewTextHandler(&buf, nil)))
	if err := n.Send(context.Background(), smsCode); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	for _, want := range []string{"level=INFO", "NOT delivered", "channel=sms", "to=+33612345678", "482913"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %q: %s", want, line)
		}
	}
}
