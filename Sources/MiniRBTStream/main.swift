import StreamCLI
await MiniRBTStreamCommand.main()
