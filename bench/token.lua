-- wrk script: client-credentials token requests (RFC 6749 §4.4).
-- Environment: AUTH = base64("client_id:client_secret") for HTTP Basic,
-- SCOPE (default mail.read). load.sh sets both.
-- No response() callback: it would run Lua per reply in wrk, which shares
-- the two cores with the server. wrk counts non-2xx replies itself.
wrk.method = "POST"
wrk.path = "/oauth2/token"
wrk.body = "grant_type=client_credentials&scope=" .. (os.getenv("SCOPE") or "mail.read")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("AUTH")
