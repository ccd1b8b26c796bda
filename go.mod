module github.com/sessionhub/sessionhub

go 1.26.8

require github.com/gorilla/securecookie v1.1.2
