package notifytest_test

import (
	"net/smtp"
	"strings"
	"testing"

	"github.com/mandated/mandated/notify/notifytest"
)

// TestSMTPDecodes sends hand-written messages with the standard library's
// client, so the decoding is checked independently of the notifier.
func TestSMTPDecodes(t *testing.T) {
	tests := []struct {
		name, raw, wantSubject, wantText string
	}{
		{
			name: "quoted-printable",
			raw: "From: a@example.org\r\nTo: b@example.org\r\nSubject: =?UTF-8?q?Code_=C3=A0_usage_unique?=\r\n" +
				"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
				"Votre code =C3=A0 usage unique : 123456. Une ligne tr=C3=A8s longue coup=\r\n=C3=A9e.\r\n",
			wantSubject: "Code à usage unique",
			wantText:    "Votre code à usage unique : 123456. Une ligne très longue coupée.\n",
		},
		{
			name: "base64 in multipart",
			raw: "From: a@example.org\r\nTo: b@example.org\r\nSubject: =?UTF-8?b?Q29kZSDDoCB1c2FnZSB1bmlxdWU=?=\r\n" +
				"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=XYZ\r\n\r\n" +
				"--XYZ\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n<p>html</p>\r\n" +
				"--XYZ\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
				"Q29kZSDDoCB1\r\nc2FnZSB1bmlxdWUgOiA2NTQzMjE=\r\n--XYZ--\r\n",
			wantSubject: "Code à usage unique",
			wantText:    "Code à usage unique : 654321",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := notifytest.StartSMTP(t)
			if err := smtp.SendMail(srv.Addr(), nil, "a@example.org", []string{"B@example.org", "c@example.org"}, []byte(tt.raw)); err != nil {
				t.Fatal(err)
			}
			got := srv.WaitFor(t, "b@example.org") // case-insensitive
			if got.Subject != tt.wantSubject || got.Text != tt.wantText {
				t.Errorf("subject %q, text %q; want %q, %q", got.Subject, got.Text, tt.wantSubject, tt.wantText)
			}
			if got.From != "a@example.org" || strings.Join(got.To, ",") != "B@example.org,c@example.org" || got.TLS {
				t.Errorf("envelope %q -> %v, TLS %v", got.From, got.To, got.TLS)
			}
		})
	}
}

// TestWaitForWaits: WaitFor returns a message that arrives after it started waiting.
func TestWaitForWaits(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	errc := make(chan error, 1)
	go func() {
		errc <- smtp.SendMail(srv.Addr(), nil, "a@example.org", []string{"late@example.org"}, []byte("Subject: late\r\n\r\nhello\r\n"))
	}()
	got := srv.WaitFor(t, "late@example.org")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got.Subject != "late" || got.Text != "hello\n" {
		t.Errorf("got %q %q", got.Subject, got.Text)
	}
}

func TestSMTPRequiresAuthWhenAsked(t *testing.T) {
	srv := notifytest.StartSMTP(t, notifytest.WithSTARTTLS(), notifytest.WithAuth("u", "p"))
	// Without credentials: refused (net/smtp does STARTTLS when offered, but
	// here it does not trust the test certificate, so dial by hand).
	c, err := smtp.Dial(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before TLS")
	}
	if err := c.Mail("a@example.org"); err == nil {
		t.Error("accepted mail without authentication")
	}
}
