-- wrk script: RFC 7662 introspection of one pre-issued access token.
-- Environment: AUTH = base64("client_id:client_secret") for HTTP Basic,
-- TOKEN = the access token. load.sh sets both and checks, before and after
-- the run, that the token introspects active (a 200 {"active":false} would
-- otherwise look like success to wrk).
wrk.method = "POST"
wrk.path = "/oauth2/introspect"
wrk.body = "token=" .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("AUTH")
