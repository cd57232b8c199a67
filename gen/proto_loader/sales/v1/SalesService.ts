// Original file: proto/sales.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { AppendUploadRequest as _sales_v1_AppendUploadRequest, AppendUploadRequest__Output as _sales_v1_AppendUploadRequest__Output } from '../../sales/v1/AppendUploadRequest.ts';
import type { AppendUploadResponse as _sales_v1_AppendUploadResponse, AppendUploadResponse__Output as _sales_v1_AppendUploadResponse__Output } from '../../sales/v1/AppendUploadResponse.ts';
import type { CancelUploadRequest as _sales_v1_CancelUploadRequest, CancelUploadRequest__Output as _sales_v1_CancelUploadRequest__Output } from '../../sales/v1/CancelUploadRequest.ts';
import type { CancelUploadResponse as _sales_v1_CancelUploadResponse, CancelUploadResponse__Output as _sales_v1_CancelUploadResponse__Output } from '../../sales/v1/CancelUploadResponse.ts';
import type { DownloadRequest as _sales_v1_DownloadRequest, DownloadRequest__Output as _sales_v1_DownloadRequest__Output } from '../../sales/v1/DownloadRequest.ts';
import type { DownloadResponse as _sales_v1_DownloadResponse, DownloadResponse__Output as _sales_v1_DownloadResponse__Output } from '../../sales/v1/DownloadResponse.ts';
import type { FinishUploadRequest as _sales_v1_FinishUploadRequest, FinishUploadRequest__Output as _sales_v1_FinishUploadRequest__Output } from '../../sales/v1/FinishUploadRequest.ts';
import type { GetResultRequest as _sales_v1_GetResultRequest, GetResultRequest__Output as _sales_v1_GetResultRequest__Output } from '../../sales/v1/GetResultRequest.ts';
import type { GetResultResponse as _sales_v1_GetResultResponse, GetResultResponse__Output as _sales_v1_GetResultResponse__Output } from '../../sales/v1/GetResultResponse.ts';
import type { StartUploadRequest as _sales_v1_StartUploadRequest, StartUploadRequest__Output as _sales_v1_StartUploadRequest__Output } from '../../sales/v1/StartUploadRequest.ts';
import type { StartUploadResponse as _sales_v1_StartUploadResponse, StartUploadResponse__Output as _sales_v1_StartUploadResponse__Output } from '../../sales/v1/StartUploadResponse.ts';
import type { UploadChunk as _sales_v1_UploadChunk, UploadChunk__Output as _sales_v1_UploadChunk__Output } from '../../sales/v1/UploadChunk.ts';
import type { UploadRequest as _sales_v1_UploadRequest, UploadRequest__Output as _sales_v1_UploadRequest__Output } from '../../sales/v1/UploadRequest.ts';
import type { UploadResponse as _sales_v1_UploadResponse, UploadResponse__Output as _sales_v1_UploadResponse__Output } from '../../sales/v1/UploadResponse.ts';

export interface SalesServiceClient extends grpc.Client {
  AppendUpload(argument: _sales_v1_AppendUploadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_AppendUploadResponse__Output>): grpc.ClientUnaryCall;
  AppendUpload(argument: _sales_v1_AppendUploadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_AppendUploadResponse__Output>): grpc.ClientUnaryCall;
  AppendUpload(argument: _sales_v1_AppendUploadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_AppendUploadResponse__Output>): grpc.ClientUnaryCall;
  AppendUpload(argument: _sales_v1_AppendUploadRequest, callback: grpc.requestCallback<_sales_v1_AppendUploadResponse__Output>): grpc.ClientUnaryCall;
  appendUpload(argument: _sales_v1_AppendUploadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_AppendUploadResponse__Output>): grpc.ClientUnaryCall;
  appendUpload(argument: _sales_v1_AppendUploadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_AppendUploadResponse__Output>): grpc.ClientUnaryCall;
  appendUpload(argument: _sales_v1_AppendUploadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_AppendUploadResponse__Output>): grpc.ClientUnaryCall;
  appendUpload(argument: _sales_v1_AppendUploadRequest, callback: grpc.requestCallback<_sales_v1_AppendUploadResponse__Output>): grpc.ClientUnaryCall;
  
  CancelUpload(argument: _sales_v1_CancelUploadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_CancelUploadResponse__Output>): grpc.ClientUnaryCall;
  CancelUpload(argument: _sales_v1_CancelUploadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_CancelUploadResponse__Output>): grpc.ClientUnaryCall;
  CancelUpload(argument: _sales_v1_CancelUploadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_CancelUploadResponse__Output>): grpc.ClientUnaryCall;
  CancelUpload(argument: _sales_v1_CancelUploadRequest, callback: grpc.requestCallback<_sales_v1_CancelUploadResponse__Output>): grpc.ClientUnaryCall;
  cancelUpload(argument: _sales_v1_CancelUploadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_CancelUploadResponse__Output>): grpc.ClientUnaryCall;
  cancelUpload(argument: _sales_v1_CancelUploadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_CancelUploadResponse__Output>): grpc.ClientUnaryCall;
  cancelUpload(argument: _sales_v1_CancelUploadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_CancelUploadResponse__Output>): grpc.ClientUnaryCall;
  cancelUpload(argument: _sales_v1_CancelUploadRequest, callback: grpc.requestCallback<_sales_v1_CancelUploadResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Returns the bytes of a result CSV.
   */
  DownloadResult(argument: _sales_v1_DownloadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_DownloadResponse__Output>): grpc.ClientUnaryCall;
  DownloadResult(argument: _sales_v1_DownloadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_DownloadResponse__Output>): grpc.ClientUnaryCall;
  DownloadResult(argument: _sales_v1_DownloadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_DownloadResponse__Output>): grpc.ClientUnaryCall;
  DownloadResult(argument: _sales_v1_DownloadRequest, callback: grpc.requestCallback<_sales_v1_DownloadResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Returns the bytes of a result CSV.
   */
  downloadResult(argument: _sales_v1_DownloadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_DownloadResponse__Output>): grpc.ClientUnaryCall;
  downloadResult(argument: _sales_v1_DownloadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_DownloadResponse__Output>): grpc.ClientUnaryCall;
  downloadResult(argument: _sales_v1_DownloadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_DownloadResponse__Output>): grpc.ClientUnaryCall;
  downloadResult(argument: _sales_v1_DownloadRequest, callback: grpc.requestCallback<_sales_v1_DownloadResponse__Output>): grpc.ClientUnaryCall;
  
  FinishUpload(argument: _sales_v1_FinishUploadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  FinishUpload(argument: _sales_v1_FinishUploadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  FinishUpload(argument: _sales_v1_FinishUploadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  FinishUpload(argument: _sales_v1_FinishUploadRequest, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  finishUpload(argument: _sales_v1_FinishUploadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  finishUpload(argument: _sales_v1_FinishUploadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  finishUpload(argument: _sales_v1_FinishUploadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  finishUpload(argument: _sales_v1_FinishUploadRequest, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Describes a stored result: its counts, the uploaded file's name, and a fresh download_url
   * (signed anew when the server signs URLs, so an expired link can be renewed). NOT_FOUND for an
   * unknown or deleted result, INVALID_ARGUMENT for a malformed id.
   */
  GetResult(argument: _sales_v1_GetResultRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_GetResultResponse__Output>): grpc.ClientUnaryCall;
  GetResult(argument: _sales_v1_GetResultRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_GetResultResponse__Output>): grpc.ClientUnaryCall;
  GetResult(argument: _sales_v1_GetResultRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_GetResultResponse__Output>): grpc.ClientUnaryCall;
  GetResult(argument: _sales_v1_GetResultRequest, callback: grpc.requestCallback<_sales_v1_GetResultResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Describes a stored result: its counts, the uploaded file's name, and a fresh download_url
   * (signed anew when the server signs URLs, so an expired link can be renewed). NOT_FOUND for an
   * unknown or deleted result, INVALID_ARGUMENT for a malformed id.
   */
  getResult(argument: _sales_v1_GetResultRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_GetResultResponse__Output>): grpc.ClientUnaryCall;
  getResult(argument: _sales_v1_GetResultRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_GetResultResponse__Output>): grpc.ClientUnaryCall;
  getResult(argument: _sales_v1_GetResultRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_GetResultResponse__Output>): grpc.ClientUnaryCall;
  getResult(argument: _sales_v1_GetResultRequest, callback: grpc.requestCallback<_sales_v1_GetResultResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Resumable chunked upload, for clients without client streaming (browsers over gRPC-Web).
   * 
   * An upload lives in the memory of the replica that answered StartUpload, so behind several
   * replicas all four calls of one upload must reach that replica. The client generates a
   * routing key (any random string) before StartUpload and sends it in the `x-upload-id` header
   * on all four calls; the proxy hashes that header (Envoy: route hash_policy with a RING_HASH
   * cluster; nginx: `hash $http_x_upload_id consistent`). A header, because a proxy routes on
   * headers and never reads the protobuf body, and a key chosen by the client, because the
   * upload id does not exist yet when StartUpload is routed. Consistent hashing needs no
   * per-replica configuration; when replicas come or go, only the uploads whose keys move fail.
   * Upload ids name their replica (`<32 hex>.<replica id>`): a call that reaches another replica
   * gets NOT_FOUND saying the upload is not on this replica, unlike an expired or cancelled one.
   * Without the header, uploads work against a single server.
   * 
   * Several files make one result: StartUpload lists their names in `filenames`, and each
   * AppendUpload says in `file_index` which file its data belongs to (see AppendUploadRequest).
   */
  StartUpload(argument: _sales_v1_StartUploadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_StartUploadResponse__Output>): grpc.ClientUnaryCall;
  StartUpload(argument: _sales_v1_StartUploadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_StartUploadResponse__Output>): grpc.ClientUnaryCall;
  StartUpload(argument: _sales_v1_StartUploadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_StartUploadResponse__Output>): grpc.ClientUnaryCall;
  StartUpload(argument: _sales_v1_StartUploadRequest, callback: grpc.requestCallback<_sales_v1_StartUploadResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Resumable chunked upload, for clients without client streaming (browsers over gRPC-Web).
   * 
   * An upload lives in the memory of the replica that answered StartUpload, so behind several
   * replicas all four calls of one upload must reach that replica. The client generates a
   * routing key (any random string) before StartUpload and sends it in the `x-upload-id` header
   * on all four calls; the proxy hashes that header (Envoy: route hash_policy with a RING_HASH
   * cluster; nginx: `hash $http_x_upload_id consistent`). A header, because a proxy routes on
   * headers and never reads the protobuf body, and a key chosen by the client, because the
   * upload id does not exist yet when StartUpload is routed. Consistent hashing needs no
   * per-replica configuration; when replicas come or go, only the uploads whose keys move fail.
   * Upload ids name their replica (`<32 hex>.<replica id>`): a call that reaches another replica
   * gets NOT_FOUND saying the upload is not on this replica, unlike an expired or cancelled one.
   * Without the header, uploads work against a single server.
   * 
   * Several files make one result: StartUpload lists their names in `filenames`, and each
   * AppendUpload says in `file_index` which file its data belongs to (see AppendUploadRequest).
   */
  startUpload(argument: _sales_v1_StartUploadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_StartUploadResponse__Output>): grpc.ClientUnaryCall;
  startUpload(argument: _sales_v1_StartUploadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_StartUploadResponse__Output>): grpc.ClientUnaryCall;
  startUpload(argument: _sales_v1_StartUploadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_StartUploadResponse__Output>): grpc.ClientUnaryCall;
  startUpload(argument: _sales_v1_StartUploadRequest, callback: grpc.requestCallback<_sales_v1_StartUploadResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Aggregates a whole CSV held in one message (capped by MAX_MESSAGE_BYTES).
   */
  UploadCSV(argument: _sales_v1_UploadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  UploadCSV(argument: _sales_v1_UploadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  UploadCSV(argument: _sales_v1_UploadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  UploadCSV(argument: _sales_v1_UploadRequest, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Aggregates a whole CSV held in one message (capped by MAX_MESSAGE_BYTES).
   */
  uploadCsv(argument: _sales_v1_UploadRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  uploadCsv(argument: _sales_v1_UploadRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  uploadCsv(argument: _sales_v1_UploadRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  uploadCsv(argument: _sales_v1_UploadRequest, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Aggregates a CSV streamed in chunks of any size; the filename travels on the first chunk.
   * Several files make one result: a non-empty filename on a later chunk ends the current file
   * and starts the next one (see UploadChunk).
   */
  UploadCSVStream(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientWritableStream<_sales_v1_UploadChunk>;
  UploadCSVStream(metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientWritableStream<_sales_v1_UploadChunk>;
  UploadCSVStream(options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientWritableStream<_sales_v1_UploadChunk>;
  UploadCSVStream(callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientWritableStream<_sales_v1_UploadChunk>;
  /**
   * Aggregates a CSV streamed in chunks of any size; the filename travels on the first chunk.
   * Several files make one result: a non-empty filename on a later chunk ends the current file
   * and starts the next one (see UploadChunk).
   */
  uploadCsvStream(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientWritableStream<_sales_v1_UploadChunk>;
  uploadCsvStream(metadata: grpc.Metadata, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientWritableStream<_sales_v1_UploadChunk>;
  uploadCsvStream(options: grpc.CallOptions, callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientWritableStream<_sales_v1_UploadChunk>;
  uploadCsvStream(callback: grpc.requestCallback<_sales_v1_UploadResponse__Output>): grpc.ClientWritableStream<_sales_v1_UploadChunk>;
  
}

export interface SalesServiceHandlers extends grpc.UntypedServiceImplementation {
  AppendUpload: grpc.handleUnaryCall<_sales_v1_AppendUploadRequest__Output, _sales_v1_AppendUploadResponse>;
  
  CancelUpload: grpc.handleUnaryCall<_sales_v1_CancelUploadRequest__Output, _sales_v1_CancelUploadResponse>;
  
  /**
   * Returns the bytes of a result CSV.
   */
  DownloadResult: grpc.handleUnaryCall<_sales_v1_DownloadRequest__Output, _sales_v1_DownloadResponse>;
  
  FinishUpload: grpc.handleUnaryCall<_sales_v1_FinishUploadRequest__Output, _sales_v1_UploadResponse>;
  
  /**
   * Describes a stored result: its counts, the uploaded file's name, and a fresh download_url
   * (signed anew when the server signs URLs, so an expired link can be renewed). NOT_FOUND for an
   * unknown or deleted result, INVALID_ARGUMENT for a malformed id.
   */
  GetResult: grpc.handleUnaryCall<_sales_v1_GetResultRequest__Output, _sales_v1_GetResultResponse>;
  
  /**
   * Resumable chunked upload, for clients without client streaming (browsers over gRPC-Web).
   * 
   * An upload lives in the memory of the replica that answered StartUpload, so behind several
   * replicas all four calls of one upload must reach that replica. The client generates a
   * routing key (any random string) before StartUpload and sends it in the `x-upload-id` header
   * on all four calls; the proxy hashes that header (Envoy: route hash_policy with a RING_HASH
   * cluster; nginx: `hash $http_x_upload_id consistent`). A header, because a proxy routes on
   * headers and never reads the protobuf body, and a key chosen by the client, because the
   * upload id does not exist yet when StartUpload is routed. Consistent hashing needs no
   * per-replica configuration; when replicas come or go, only the uploads whose keys move fail.
   * Upload ids name their replica (`<32 hex>.<replica id>`): a call that reaches another replica
   * gets NOT_FOUND saying the upload is not on this replica, unlike an expired or cancelled one.
   * Without the header, uploads work against a single server.
   * 
   * Several files make one result: StartUpload lists their names in `filenames`, and each
   * AppendUpload says in `file_index` which file its data belongs to (see AppendUploadRequest).
   */
  StartUpload: grpc.handleUnaryCall<_sales_v1_StartUploadRequest__Output, _sales_v1_StartUploadResponse>;
  
  /**
   * Aggregates a whole CSV held in one message (capped by MAX_MESSAGE_BYTES).
   */
  UploadCSV: grpc.handleUnaryCall<_sales_v1_UploadRequest__Output, _sales_v1_UploadResponse>;
  
  /**
   * Aggregates a CSV streamed in chunks of any size; the filename travels on the first chunk.
   * Several files make one result: a non-empty filename on a later chunk ends the current file
   * and starts the next one (see UploadChunk).
   */
  UploadCSVStream: grpc.handleClientStreamingCall<_sales_v1_UploadChunk__Output, _sales_v1_UploadResponse>;
  
}

export interface SalesServiceDefinition extends grpc.ServiceDefinition {
  AppendUpload: MethodDefinition<_sales_v1_AppendUploadRequest, _sales_v1_AppendUploadResponse, _sales_v1_AppendUploadRequest__Output, _sales_v1_AppendUploadResponse__Output>
  CancelUpload: MethodDefinition<_sales_v1_CancelUploadRequest, _sales_v1_CancelUploadResponse, _sales_v1_CancelUploadRequest__Output, _sales_v1_CancelUploadResponse__Output>
  DownloadResult: MethodDefinition<_sales_v1_DownloadRequest, _sales_v1_DownloadResponse, _sales_v1_DownloadRequest__Output, _sales_v1_DownloadResponse__Output>
  FinishUpload: MethodDefinition<_sales_v1_FinishUploadRequest, _sales_v1_UploadResponse, _sales_v1_FinishUploadRequest__Output, _sales_v1_UploadResponse__Output>
  GetResult: MethodDefinition<_sales_v1_GetResultRequest, _sales_v1_GetResultResponse, _sales_v1_GetResultRequest__Output, _sales_v1_GetResultResponse__Output>
  StartUpload: MethodDefinition<_sales_v1_StartUploadRequest, _sales_v1_StartUploadResponse, _sales_v1_StartUploadRequest__Output, _sales_v1_StartUploadResponse__Output>
  UploadCSV: MethodDefinition<_sales_v1_UploadRequest, _sales_v1_UploadResponse, _sales_v1_UploadRequest__Output, _sales_v1_UploadResponse__Output>
  UploadCSVStream: MethodDefinition<_sales_v1_UploadChunk, _sales_v1_UploadResponse, _sales_v1_UploadChunk__Output, _sales_v1_UploadResponse__Output>
}
