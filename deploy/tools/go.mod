module wid.local/deploy-tools

go 1.21
