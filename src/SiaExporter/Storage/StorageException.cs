namespace SiaExporter.Storage;

/// <summary>The history database holds something this collector cannot use (a corrupt or hand-edited
/// row, a newer schema): a clear storage error, logged and retried like an unwritable file, never a crash.</summary>
public sealed class StorageException(string message) : Exception(message);
